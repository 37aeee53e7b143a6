"""The models and what keeps them right under every precision: layers and blocks, the teacher
and student builders, the precision policy, the dtype-graph audit and phase freezing.

Imports only keras and numpy (and the config's dataclasses): this runs on every backend.
"""
