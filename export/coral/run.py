"""Run a tfpipe bundle on a Coral Edge TPU, or on the CPU when there is none. No TensorFlow.

    python export/coral/run.py --bundle runs/quickstart/export IMAGE [IMAGE ...]
    python export/coral/run.py --bundle runs/det_yolov3_tiny/export --camera 0

It loads the bundle's Edge TPU build (model_int8_tpu.tflite, from `convert --target edgetpu`) or
else its int8 model, compiled (<model>_edgetpu.tflite from compile.sh) when it is there,
with the Edge TPU delegate (libedgetpu.so.1); when the delegate cannot be loaded it says why and
runs the same model on the CPU. Each image is preprocessed as model.json says and decoded by
tfpipe.runtime (the code the evaluator uses); it prints the classes, detections or class shares,
then the median latency of the model alone.

Exit status: 0, or 2 with a one-line error for a bad bundle, image or option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# the repository's tfpipe, when run from a checkout (on a device: pip install --no-deps <repo>)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tfpipe.errors import TfpipeError  # noqa: E402
from tfpipe.runtime.backends import DelegateError  # noqa: E402
from tfpipe.runtime.bundle import Bundle, Contract, describe  # noqa: E402
from tfpipe.runtime.contract import model_label  # noqa: E402
from tfpipe.runtime.model import TFLiteModel, image_input  # noqa: E402


def default_model(folder: Path, cpu_only: bool) -> str:
    """The Edge TPU build when there is one (the CPU build is cut at its first unmappable op), the
    CPU build with --cpu (it runs faster there: XNNPACK has no int8 PRELU, for one)."""
    tpu = model_label("int8", tpu_build=True)
    return tpu if not cpu_only and tpu in Contract(folder).meta["models"] else "int8"


def open_model(bundle: Bundle, cpu_only: bool, threads: int, backend: str) -> tuple[TFLiteModel, str]:
    """The Edge TPU-compiled model on the Edge TPU, else the bundle's model on the CPU, and where it runs."""
    compiled = bundle.model_file.with_name(bundle.model_file.stem + "_edgetpu.tflite")
    if not cpu_only:
        try:
            model = TFLiteModel(str(compiled if compiled.is_file() else bundle.model_file), backend, threads,
                                delegate="edgetpu")
            return model, "Edge TPU"
        except DelegateError as e:
            print(f"Edge TPU delegate not available ({e}): running on the CPU", flush=True)
    return TFLiteModel(str(bundle.model_file), backend, threads), f"CPU, {threads} thread(s)"


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("L" if image.mode in ("L", "I;16", "I", "1") else "RGB"))
    except FileNotFoundError:
        raise TfpipeError(f"{path}: no such image", "give image files (PNG, JPEG, ...)") from None
    except (UnidentifiedImageError, OSError) as e:
        reason = " ".join(str(e).split())
        raise TfpipeError(f"{path}: not a readable image ({reason})", "give PNG or JPEG files") from None


def camera_frames(index: int, count: int):
    import cv2  # only for --camera: OpenCV reads the camera

    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        raise TfpipeError(f"--camera {index}: no camera could be opened", "check the device index (ls /dev/video*)")
    try:
        for i in range(count):
            ok, frame = capture.read()
            if not ok:
                raise TfpipeError(f"--camera {index}: reading frame {i} failed", "check the camera")
            yield f"frame {i}", frame[..., ::-1]  # BGR -> RGB
    finally:
        capture.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export/coral/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="a run's export/ folder (model.json)")
    parser.add_argument("images", nargs="*", type=Path, help="image files")
    parser.add_argument("--camera", type=int, default=None, metavar="INDEX", help="read frames from this camera")
    parser.add_argument("--frames", type=int, default=30, help="frames to read with --camera (default 30)")
    parser.add_argument("--model", default=None,
                        help="which of the bundle's models (default: int8_tpu, the Edge TPU build of "
                             "`convert --target edgetpu`, when the bundle has one and --cpu is not given; else int8)")
    parser.add_argument("--cpu", action="store_true", help="do not try the Edge TPU")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per image (default 3)")
    parser.add_argument("--min-score", type=float, default=0.0,
                        help="detections below are not printed (default 0: all, as the evaluator scores them)")
    parser.add_argument("--runs", type=int, default=50, help="timed invokes for the latency (default 50)")
    parser.add_argument("--runtime", default="auto", choices=("auto", "tflite_runtime", "litert"),
                        help="interpreter package (default: tflite_runtime, else ai-edge-litert)")
    args = parser.parse_args(argv)
    try:
        if not 0 <= args.min_score <= 1:
            raise TfpipeError(f"--min-score: {args.min_score} is not accepted", "use a score in 0..1")
        if (args.camera is None) == (not args.images):
            raise TfpipeError("give image files or --camera INDEX (one of the two)", "see --help")
        for name, value in (("--threads", args.threads), ("--top-k", args.top_k), ("--runs", args.runs),
                            ("--frames", args.frames)):
            if value < 1:
                raise TfpipeError(f"{name}: {value} is not accepted", "use 1 or more")
        bundle = Bundle(args.bundle, args.model or default_model(args.bundle, args.cpu))
        model, where = open_model(bundle, args.cpu, args.threads, args.runtime)
        name = image_input(model.inputs, bundle.model_file)
        frames = camera_frames(args.camera, args.frames) if args.camera is not None else (
            (str(path), read_image(path)) for path in args.images)
        first = None
        for label, pixels in frames:
            x = bundle.input_of(pixels)
            first = x if first is None else first
            prediction = bundle.decode(model.predict({name: x}), pixels.shape[:2], args.top_k, args.min_score)
            lines = describe(prediction, bundle.classes)
            print(f"{label}: {lines[0]}")
            for line in lines[1:]:
                print(line)
        times = model.latency({name: first}, warmup=5, runs=args.runs)
        print(f"latency: median {1000 * float(np.median(times)):.3f} ms over {args.runs} runs "
              f"({bundle.model_file.name}, {where}, {model.backend})")
        return 0
    except TfpipeError as e:
        print(f"export/coral/run.py: error: {e.message}" + (f" ({e.hint})" if e.hint else ""), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
