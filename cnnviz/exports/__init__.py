"""Taking a run to other tools: the model as ONNX, the learning process as TensorBoard event files or as an
animation (GIF or MP4).

Engine code (no Qt), called by ``cnnviz export`` and the window's Export menu:

- :mod:`~cnnviz.exports.onnx_export`: the model at any step of a run as one ONNX file that takes the
  pixels as read from the files (the run's normalisation is inside the graph) and gives the class scores.
- :mod:`~cnnviz.exports.tensorboard_export`: the run's curves, its layers' weight and gradient histograms
  over time and its conv filters at keyframes as TensorBoard event files (``tensorboard --logdir DIR``).
- :mod:`~cnnviz.exports.animation` (with ``plan``, ``frames``, ``drawing``, ``encoders``): the learning process
  as a GIF or MP4, frames drawn with numpy and Pillow; only ``--view window`` needs the window
  (``cnnviz/gui/export_window.py``).
- :mod:`~cnnviz.exports.pictures`: conv filters as RGB pictures in the window's colours, without Qt.
- :mod:`~cnnviz.exports.outputs`: where an export may write, and the optional packages an export needs.

The writer libraries (onnx, tensorboardX, pillow, imageio) are imported only when an export runs, so a missing
one is a one-line error that names what to install, never an ImportError at start-up.
"""
from cnnviz.exports.outputs import ExportError

__all__ = ["ExportError"]
