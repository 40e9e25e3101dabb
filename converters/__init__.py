"""Format conversions, installed as ``neurodeploy.converters``.

torch <-> NIR, NIR -> integer program and other frameworks' conventions land here (see
shared/DESIGN.md). Nothing is imported eagerly: optional dependencies stay optional.
"""
