"""cnnviz: watch a convolutional network learn and look inside it."""
__version__ = "0.1.0"
