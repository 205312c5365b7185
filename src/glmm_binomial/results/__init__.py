"""What is done with a fit after it: model checks, effects, tables and plots."""
