"""Command-line front ends. Each module has ``parse_args(argv)`` and ``main(argv)``.

``scripts/<name>.py`` and the console entry points in ``setup.cfg`` both call ``main``.
"""
