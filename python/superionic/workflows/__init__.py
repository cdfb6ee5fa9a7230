"""Workflows: multi-stage jobs (active learning, structure to conductivity) built on every layer below.

They sit above ``validation``/``studies`` and below ``cli``: each stage calls the public API of a lower
layer (data, train, export, md, analysis, validation) and records its result so a killed job resumes.
"""
