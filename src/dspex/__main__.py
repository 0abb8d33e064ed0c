"""``python -m dspex`` runs the ``dspex`` command line."""

from .cli import main

if __name__ == "__main__":
    main()
