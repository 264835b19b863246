"""KneeScope's Gradio UI. ``app.ui.build_demo`` builds the page; ``app.py`` at the repository root launches it."""
