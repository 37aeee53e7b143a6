# Parameters: the only cell to edit (tagged "parameters": papermill -p sets them too).
DATASET = "/kaggle/input/your-dataset"  # class folders, or train/ val/ test/ of class folders
CONFIG = "kaggle_t4"  # a packaged config (kaggle_t4, default, tiny) or a YAML file
OVERRIDES = []  # "key=value" strings, as with --set, e.g. ["phases.0.epochs=5"]
PRECISION = "auto"  # auto: mixed_float16 on a T4, float32 on a CPU; None keeps the config's
WORK = "/kaggle/working"  # Kaggle keeps this folder as the notebook's output
RUN_NAME = "teacher_student_run"  # the run directory: keep it to resume after a restart
# The package, attached as a dataset: the wheel that `make wheel` writes (dist/*.whl; no build
# needed), or the repository folder. The dataset's folder, or the .whl file itself.
PACKAGE_SOURCE = "/kaggle/input/teacher-student"
# A previous session's output holding RUN_NAME (attach that version's output as a dataset,
# e.g. "/kaggle/input/my-notebook-output"): copied into WORK, and the run continues from it.
RESUME_FROM = None
SESSION_HOURS = 12  # Kaggle's limit: the jobs stop in time, everything saved; None: no limit
ALLOW_CPU = False  # True: train without a GPU on purpose (minutes for digits, days at 224 px)
# The config's trunk_weights "imagenet" (kaggle_t4) are downloaded from the internet. In a
# competition without internet, attach Keras' weights file for the trunk as a dataset (for
# EfficientNetB0: efficientnetb0_notop.h5, from storage.googleapis.com/keras-applications)
# and give the file or its folder here: it is copied where Keras keeps its downloads.
IMAGENET_WEIGHTS = None
# The competition's test images (a folder, searched at any depth, or a CSV with a `path`
# column; a bare name is looked for under /kaggle/input): the last cell classifies them into
# WORK/submission.csv. None: no submission.
TEST_DIR = None
