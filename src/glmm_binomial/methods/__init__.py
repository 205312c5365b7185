"""Estimation methods: one object per method (Laplace, AGQ, variational Bayes, ...) and the
registry every front end reads; each turns ModelData into a FitOutput.
"""
