"""What a fit returns and what is done with it afterwards: the facts (base.ResultBase), the
post-fit modules (intervals, profiles, bootstrap, simulation, residuals, marginal effects,
plots, summary, likelihood-ratio tests) that take them, and GLMMResult (result.py) composed
above those; result.py's docstring draws the layers, aliases.py lists lme4's and statsmodels'
names.
"""
