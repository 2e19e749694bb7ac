"""Size limits on what cnnviz reads from outside: files, metadata and images.

Every file a user names is checked against these before it is read, so a huge, endless or hostile file
is one clear error instead of a process that eats all memory. They are generous for real data:

- full MNIST's training images are 47 MB raw (10 MB gzip); a basic-cnn checkpoint with Adam state
  is about 15 MB; a photo of a digit is a few MB at most.

The readers look these names up at call time (``limits.MAX_IDX_BYTES``), so tests can lower them.
"""
from __future__ import annotations

GiB = 1 << 30
MiB = 1 << 20

MAX_IDX_BYTES = 2 * GiB  # an IDX file's content (after gzip), and its file size on disk
MAX_IDX_DIMS = 4  # images are 3 dimensions, labels 1; 4 leaves room for a channel axis
MAX_CHECKPOINT_BYTES = 2 * GiB  # a run file (weights + optimizer state + history)
MAX_CHECKPOINT_HEADER_BYTES = 64 * MiB  # its JSON header (safetensors itself allows 100 MB)
MAX_JSON_DEPTH = 32  # nesting of any JSON cnnviz reads; its own files nest 5 deep at most
MAX_MODEL_FILE_BYTES = 16 * MiB  # a model spec saved from the model editor (a few KB)
MAX_IMAGE_BYTES = 64 * MiB  # an image file given to `cnnviz predict`
MAX_IMAGE_SIDE = 10_000  # its width and height in pixels
MAX_IMAGE_PIXELS = 40_000_000  # width x height (a 40-megapixel photo; Qt's own cap is 256 MB decoded)
MAX_DECODED_BYTES = 4 * GiB  # a folder's test images once decoded to uint8 pixels (CIFAR-10's are 31 MB)
STREAM_ABOVE_BYTES = 2 * GiB  # a folder's training images decoded beyond this are read from disk per batch
MAX_CLASSES = 1000  # classes of a dataset or a model (ImageNet's count; MNIST has 10)
MAX_CLASS_NAME_LENGTH = 100  # characters of one class name
MAX_LAYERS = 1000  # layers of a model (the presets have at most 19)
# (a model's size is capped by its parameters and activation memory: cnnviz/models/shapes.py)
