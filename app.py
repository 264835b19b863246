"""KneeScope web app: ``python app.py --help``. Wiring only: the page is app/ui.py, the analysis is pipeline/."""

from app.main import main

if __name__ == "__main__":
    main()
