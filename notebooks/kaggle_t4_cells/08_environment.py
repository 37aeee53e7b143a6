import keras
import tensorflow as tf

from teacher_student.models.precision import resolve

print(f"TensorFlow {tf.__version__}, Keras {keras.__version__} "
      f"(backend {keras.backend.backend()})")
gpus = tf.config.list_physical_devices("GPU")
for gpu in gpus:
    details = tf.config.experimental.get_device_details(gpu)
    capability = ".".join(str(n) for n in details.get("compute_capability", ()))
    print(f"{gpu.name}: {details.get('device_name', 'GPU')}, compute capability {capability}")
if not gpus and not ALLOW_CPU:
    raise Stop("no GPU: in the notebook's settings choose the accelerator 'GPU T4 x2' (or "
               "P100) and run all cells again; or set ALLOW_CPU = True to train on the CPU "
               "on purpose (minutes for the digits, days for kaggle_t4 at 224 px).")
if not gpus:
    print("no GPU: training runs on the CPU (ALLOW_CPU)")
elif len(gpus) > 1:
    print(f"{len(gpus)} GPUs: the jobs train on all of them (MirroredStrategy)")
policy, why = resolve(config.precision)
print(why)

import socket

KERAS_DOWNLOADS = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def online():
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=5).close()
        return True
    except OSError:
        return False


if IMAGENET_WEIGHTS:  # copied where Keras looks before it downloads
    given = Path(IMAGENET_WEIGHTS)
    KERAS_DOWNLOADS.mkdir(parents=True, exist_ok=True)
    for weights in [given] if given.is_file() else sorted(given.rglob("*.h5")):
        shutil.copy(weights, KERAS_DOWNLOADS / weights.name)
        print(f"ImageNet weights: {weights.name} from {weights.parent}")


def squeezed(name):
    return name.lower().replace("_", "").replace("-", "")


def weights_kept(trunk):
    """Whether Keras' downloads hold a weights file of `trunk` (efficientnetb0_notop.h5 for
    EfficientNetB0, weights_mobilenet_v3_small_...h5 for MobileNetV3Small)."""
    return KERAS_DOWNLOADS.is_dir() and any(
        squeezed(trunk) in squeezed(path.name) for path in KERAS_DOWNLOADS.iterdir())


for model, part in (("teacher", config.teacher), ("student", config.student)):
    if (part.trunk and part.trunk_weights == "imagenet" and not weights_kept(part.trunk)
            and not online()):
        raise Stop(f"no internet, and the {model}'s trunk {part.trunk} starts from ImageNet "
                   "weights that Keras downloads: attach Keras' weights files as a dataset "
                   "(for EfficientNetB0 efficientnetb0_notop.h5, for MobileNetV3Small "
                   "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5, from "
                   "storage.googleapis.com/keras-applications/ and .../mobilenet_v3/) and set "
                   "IMAGENET_WEIGHTS to that folder, or turn the notebook's internet on.")
