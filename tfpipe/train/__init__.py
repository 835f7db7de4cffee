"""Float training: losses, schedules, callbacks and the trainer."""
