# How R prints a summary's parts: abbreviate() of column names, as lme4's summary prints the
# correlation of fixed effects (rows to 11 characters, columns to 6), and format.pval() of a
# table's p-values (printCoefmat's, 3 digits); read by tests/test_summary.py.
# usage: Rscript make_print_format.R  (in tests/reference; R 4.2.2)
p <- list(c(1.47e-09, 0.001068, 0.000474, 0.000182), c(0.0012, 0.5, 0.04), c(0.2, 0.5432, 0.04),
          c(1e-20, 0.5432, 0.04), c(1e-20, 0.00001234, 0.04), c(1e-20, 3e-5), c(0.9999, 0.12345),
          c(5e-4, 2e-4, 0.03), c(0, 0.5), c(0.049999, 0.05, 0.0501))
x <- c("I(x1 > 0 & b)TRUE","splines::ns(x2, 2)1","I(f %in% c(\"a\", \"b\"))TRUE","(Intercept)","urbanY","livch1","livch3+","age","I(age^2)","age:urbanY","poly(x1, 2)1","factor(herd)2","period2","C(f, contr.sum)1","log(x2, base = 10)","Anger","GenderM","btypescold","situself","a b c d e f g","x  y","  lead", "IQ", "ABCDEFGH", "aeiouaeiou")
writeLines(jsonlite::toJSON(list(x = x, a6 = unname(abbreviate(x, 6)), a11 = unname(abbreviate(x, 11)),
                               unique = unname(abbreviate(c(x[2], "splines::ns(x2, 2)2"), 6)),
                               pvalues = p, pvalues_shown = lapply(p, format.pval, digits = 3)),
                          pretty = TRUE, digits = NA), "print_format.json")
