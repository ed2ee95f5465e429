"""Compile every pipeline into KFP v2 IR YAML:
`python compile.py [--output-dir DIR] [--image REF] [--git-commit SHA]`."""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from kfp import compiler

from components.image import DEFAULT_IMAGE
from pipelines import defaults, drift_check, training

ROOT = Path(__file__).resolve().parent


def pipelines(image: str, root: Path = ROOT, git_commit: str = "unknown") -> dict:
    """Every pipeline of the project, by file stem, built on `image` with defaults from configs/ (and
    `git_commit` as the training pipeline's default commit)."""
    return {training.NAME: training.build(defaults.load(root=root), image=image, git_commit=git_commit),
            drift_check.NAME: drift_check.build(defaults.load_drift(root=root), image=image)}


def _sorted(value):
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    return [_sorted(v) for v in value] if isinstance(value, list) else value


def canonical_header(text: str) -> str:
    """KFP writes dict defaults in the header comment in protobuf map order, which varies between
    runs; sort them so the same inputs always compile to the same bytes."""
    lines = []
    for line in text.splitlines(keepends=True):
        head, sep, rest = line.partition(" [Default: ")
        if line.startswith("#    ") and sep and rest.startswith("{"):
            line = f"{head}{sep}{_sorted(ast.literal_eval(rest.rstrip().removesuffix(']')))}]\n"
        lines.append(line)
    return "".join(lines)


def compile_all(output_dir: str | Path, image: str = DEFAULT_IMAGE, root: Path = ROOT,
                git_commit: str = "unknown") -> list[Path]:
    if not image or image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        raise ValueError(f"--image {image!r}: give a pinned reference REGISTRY/NAME:TAG or @sha256 digest "
                         "(no ':latest')")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pipeline in pipelines(image, root, git_commit).items():
        path = out / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        path.write_text(canonical_header(path.read_text()))
        written.append(path)
    return written


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="compile.py", description=__doc__)
    p.add_argument("--output-dir", default="compiled", help="folder for the YAML files (default: compiled)")
    p.add_argument("--image", default=DEFAULT_IMAGE, help=f"component image (default: {DEFAULT_IMAGE})")
    p.add_argument("--git-commit", default="unknown",
                   help="default of the training pipeline's git_commit parameter, recorded on every model its runs "
                        "register (default: unknown; `mlops upload` sets the commit it uploads)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        for path in compile_all(args.output_dir, args.image, git_commit=args.git_commit):
            print(path)
    except (ValueError, OSError) as exc:
        print(f"compile.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
