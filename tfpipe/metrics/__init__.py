"""Pure metric code (NumPy, pycocotools), below the stages that use it: the evaluator, selective
quantization and the tasks score with the same functions."""
