"""Exports of a recorded run into other formats: for now, the learning process as an animation (GIF or MP4).

Qt-free like the rest of the engine: frames are numpy RGB arrays drawn with numpy (colour maps) and Pillow
(text, lines, layout), encoded with Pillow (GIF) or imageio's ffmpeg (MP4). Only ``--view window`` needs the
window, and it lives in ``cnnviz/gui/export_window.py``.
"""
