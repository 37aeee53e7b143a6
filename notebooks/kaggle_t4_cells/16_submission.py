from teacher_student.outputs import predictions
from teacher_student.outputs.classifier import averaged_with_mirror, from_run

SUBMISSION = Path(WORK) / "submission.csv"
if TEST_DIR is None:
    print("submission: none; set TEST_DIR in the parameters cell to the test images (e.g. "
          "'/kaggle/input/<competition>/test') and run this cell again to write "
          f"{SUBMISSION}")
elif comparison is None:
    print("submission: after the distillation (not finished in this session)")
else:
    test_images = find_dataset(TEST_DIR)
    if test_images is None or not Path(test_images).exists():
        raise Stop(f"TEST_DIR {TEST_DIR!r} was not found: attach the competition's data and "
                   "set TEST_DIR to its test images (a folder or a CSV with a 'path' column)")
    classifier = from_run(run)
    if config.data.flip:  # photos: the model learnt that a mirror is the same class
        classifier = averaged_with_mirror(classifier)
    print(f"predicting with {classifier.description}")
    written = predictions.write_predictions(classifier, Path(test_images), SUBMISSION)
    print(written.summary())
    with SUBMISSION.open() as submission:
        print("".join(submission.readlines()[:6]), end="")
