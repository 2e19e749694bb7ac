"""A dismissible banner for errors and warnings: visible, never modal, never lost in a log."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

_STYLES = {
    "error": "background:#fde2e1; color:#7a1212; border:1px solid #e5a3a0;",
    "warning": "background:#fff4d6; color:#6b4a00; border:1px solid #e8cf8a;",
    "info": "background:#e3effc; color:#123c6b; border:1px solid #a9c8ee;",
}


class MessageBanner(QWidget):
    """Shows the latest message with its level until dismissed or replaced."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBanner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        close = QToolButton(self)
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        layout.addWidget(close)
        self.level = ""
        self.hide()

    def show_message(self, level: str, text: str) -> None:
        self.level = level
        self.label.setText(text)
        self.setStyleSheet(f"#messageBanner {{{_STYLES.get(level, _STYLES['info'])} border-radius:4px;}}")
        self.show()

    def dismiss(self) -> None:
        self.level = ""
        self.label.clear()
        self.hide()

    def text(self) -> str:
        return self.label.text()
