"""Test set-up: Qt offscreen before anything imports it; one torch thread so tests share 2 cores well."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("CNNVIZ_NO_SETTINGS", "1")  # tests never read or write the user's remembered settings

import torch  # noqa: E402

torch.set_num_threads(1)
