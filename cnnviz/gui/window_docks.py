"""The window's docks: which view goes where, and the one layout rule that keeps the window usable on a laptop.

Every view is a dock of its own (movable, floatable, closable; View lists them). The default layout: the
experiment panel on the left; curves (tabbed with evaluation, model, compare, counterfactual, ablation),
feature maps (tabbed with filters, convolution, distributions, training health, projector) and the draw
panel on the right.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QFrame, QScrollArea, QTabBar, QWidget

from cnnviz.gui.visibility import catch_up_when_raised


def make_dock(window, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea,
              scrolls: bool = False) -> QDockWidget:
    """A dock holding `widget`; `scrolls` puts a panel that needs more room than a laptop screen leaves it
    (the window must fit 1280 x 800) into a scroll area, which shows no bars when there is room."""
    dock = QDockWidget(title, window)
    dock.setObjectName(name)
    if scrolls:
        area_widget = QScrollArea()
        area_widget.setObjectName(f"{name}Scroll")
        area_widget.setWidget(widget)
        area_widget.setWidgetResizable(True)
        area_widget.setFrameShape(QFrame.Shape.NoFrame)
        widget = area_widget
    dock.setWidget(widget)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                     | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    window.addDockWidget(area, dock)
    return dock


def build_docks(w) -> dict[str, QDockWidget]:
    """Dock every view of window `w` in the default layout; returns the docks by name."""
    left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
    d = {
        "experiment": make_dock(w, "Experiment", "experimentDock", w.experiment, left),
        "curves": make_dock(w, "Curves", "curvesDock", w.curves, right),
        "draw": make_dock(w, "Draw", "drawDock", w.draw, right, scrolls=True),
        "filters": make_dock(w, "Filters", "filtersDock", w.filters, right),
        "feature_maps": make_dock(w, "Feature maps", "featureMapsDock", w.feature_maps, right),
        "evaluation": make_dock(w, "Evaluation", "evaluationDock", w.evaluation, right, scrolls=True),
        "model": make_dock(w, "Model", "modelDock", w.model_editor, right, scrolls=True),
        "playground": make_dock(w, "Convolution", "playgroundDock", w.playground, right, scrolls=True),
        "compare": make_dock(w, "Compare", "compareDock", w.compare_view, right, scrolls=True),
        "distributions": make_dock(w, "Distributions", "distributionsDock", w.distributions, right),
        "health": make_dock(w, "Training health", "healthDock", w.health, right),
        "counterfactual": make_dock(w, "Counterfactual", "counterfactualDock", w.counterfactual, right,
                                    scrolls=True),
        "ablation": make_dock(w, "Ablation", "ablationDock", w.ablation, right),
        "projector": make_dock(w, "Projector", "projectorDock", w.projector, right),
    }
    for dock in d.values():  # views skip work behind another tab (visibility.on_screen) and catch up when raised
        catch_up_when_raised(dock, dock.widget().widget() if isinstance(dock.widget(), QScrollArea) else dock.widget())
    d["experiment"].setMinimumWidth(320)
    w.splitDockWidget(d["curves"], d["draw"], Qt.Orientation.Horizontal)
    w.splitDockWidget(d["curves"], d["feature_maps"], Qt.Orientation.Vertical)
    for name in ("evaluation", "model", "compare", "counterfactual", "ablation"):
        w.tabifyDockWidget(d["curves"], d[name])
    for name in ("filters", "playground", "distributions", "health", "projector"):
        w.tabifyDockWidget(d["feature_maps"], d[name])
    d["curves"].raise_()
    d["feature_maps"].raise_()
    # the draw panel at the width it needs (canvas and bars side by side), the middle column takes the rest
    draw_width = w.draw.minimumSizeHint().width() + 24
    w.resizeDocks([d["experiment"], d["curves"], d["draw"]], [320, 1440 - 320 - draw_width, draw_width],
                  Qt.Orientation.Horizontal)
    w.resizeDocks([d["curves"], d["feature_maps"]], [430, 430], Qt.Orientation.Vertical)
    return d


def keep_draw_panel_width(w, window_width: int) -> None:
    """The draw panel keeps the width it needs (canvas and bars side by side) while the window leaves the
    other columns theirs; in a smaller window it scrolls instead of pushing the window off the screen."""
    dock = getattr(w, "docks", {}).get("draw")
    if dock is None:
        return
    need = w.draw.minimumSizeHint().width() + 4
    others = w.docks["experiment"].minimumWidth() + w.feature_maps.minimumSizeHint().width() + 48
    dock.widget().setMinimumWidth(max(120, min(need, window_width - others)))


def hide_orphan_tab_bars(w) -> list[list[str]]:
    """Hide the tab bars Qt leaves behind when docks are tabified before the window has a size.

    Qt (6.11; reproduced with bare QDockWidgets) keeps the bar made by the first tabify of the second tab
    group visible after the next tabify into that group replaces it: a stray "Feature maps | Filters" bar then
    floats over the Experiment panel. It is a bar of the window whose tabs are a strict subset of another
    visible bar's; the layout never uses it again. Returns the tabs of the bars hidden."""
    bars = [bar for bar in w.findChildren(QTabBar) if bar.parent() is w and bar.isVisible()]
    tabs = {bar: [bar.tabText(i) for i in range(bar.count())] for bar in bars}
    hidden = []
    for bar in bars:
        if any(set(tabs[bar]) < set(tabs[other]) for other in bars if other is not bar):
            bar.hide()
            hidden.append(tabs[bar])
    return hidden
