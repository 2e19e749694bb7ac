"""Training from a user's own script works whatever its `__main__` is: a short script without an
`if __name__ == "__main__":` guard (how most people write one) trains, and runs once, not again in the child."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os
    print("SCRIPT RAN", os.getpid(), flush=True)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    import cnnviz.app

    window = cnnviz.app.create_window()
    window.session.set_recipe(window.session.recipe.replace(train__max_steps=5, train__evaluate_test=False))
    window.train()
    app = QApplication.instance()

    def check():
        if window.trainer_state() in ("finished", "failed", "stopped") and not window.controller.active:
            banner = window.banner.text() if window.banner.isVisible() else ""
            print("RESULT", window.trainer_state(), len(window.session.history.step_loss), repr(banner), flush=True)
            window.close()
            app.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(50)
    QTimer.singleShot(90000, app.quit)
    app.exec()
""")


def test_an_unguarded_script_trains_and_is_not_run_again_in_the_child(tmp_path):
    script = tmp_path / "my_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CNNVIZ_NO_SETTINGS": "1",
           "CNNVIZ_DATA_DIR": str(tmp_path / "appdata")}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("SCRIPT RAN") == 1, proc.stdout  # the child did not run the user's script
    assert "RESULT finished 5 ''" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "bootstrapping phase" not in proc.stderr and "Traceback" not in proc.stderr
