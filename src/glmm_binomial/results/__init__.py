"""What a fit returns and what is done with it afterwards: GLMMResult, tables, prediction,
intervals, profiles, bootstrap, simulation, residuals, plots.
"""
