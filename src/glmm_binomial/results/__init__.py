"""After the fit: marginal means, contrasts, trends and variance decompositions of a result."""
