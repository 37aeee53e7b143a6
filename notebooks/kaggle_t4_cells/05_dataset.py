from teacher_student.data import embedded

KAGGLE_INPUT = Path("/kaggle/input")


def find_dataset(name):
    """`name` itself if it is an embedded dataset or an existing path, else the first folder of
    that name under /kaggle/input (attached datasets may sit a level or two deeper), or None."""
    if name in embedded.EMBEDDED or Path(name).exists():
        return name
    if KAGGLE_INPUT.is_dir():
        for pattern in ("*", "*/*", "*/*/*"):
            for path in sorted(KAGGLE_INPUT.glob(pattern)):
                if path.name == Path(name).name and path.is_dir():
                    return str(path)
    return None


source = find_dataset(DATASET)
if source is None:
    attached = sorted(p.name for p in KAGGLE_INPUT.iterdir()) if KAGGLE_INPUT.is_dir() else []
    raise Stop(f"DATASET {DATASET!r} was not found"
               + (f" (attached under /kaggle/input: {', '.join(attached)})" if attached else "")
               + ". Attach your images (Add Input) and set DATASET in the parameters cell to "
               "their folder, or to 'digits' for the embedded dataset.")
print(f"dataset: {source}")
