import keras
import tensorflow as tf

# What the project is tested with (requirements.txt): Keras 3, TensorFlow 2.16 or later.
keras_version = tuple(int(part) for part in keras.__version__.split(".")[:2])
tf_version = tuple(int(part) for part in tf.__version__.split(".")[:2])
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
if keras_version[0] != 3 or tf_version < (2, 16):
    raise RuntimeError(
        f"teacher_student needs Keras 3 and TensorFlow >= 2.16, found Keras {keras.__version__} "
        f"and TensorFlow {tf.__version__}: in the notebook's settings choose the latest "
        "environment, or run: pip install -q 'keras>=3.8' 'tensorflow>=2.16' and restart")
