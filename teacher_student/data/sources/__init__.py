"""Where images come from: one small module per kind of source (a folder of class folders, a
CSV, a `.npz`, an embedded dataset name, a folder of any layout, one image file), each listing
candidates by the rules of `candidates.py`; `registry.py` says which kind reads a given source.
"""
