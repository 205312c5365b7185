# R's abbreviate() of column names, as lme4's summary prints the correlation of fixed effects
# (rows to 11 characters, columns to 6); read by tests/test_summary.py.
# usage: Rscript make_abbreviate.R  (in tests/reference; R 4.2.2)
x <- c("I(x1 > 0 & b)TRUE","splines::ns(x2, 2)1","I(f %in% c(\"a\", \"b\"))TRUE","(Intercept)","urbanY","livch1","livch3+","age","I(age^2)","age:urbanY","poly(x1, 2)1","factor(herd)2","period2","C(f, contr.sum)1","log(x2, base = 10)","Anger","GenderM","btypescold","situself","a b c d e f g","x  y","  lead", "IQ", "ABCDEFGH", "aeiouaeiou")
writeLines(jsonlite::toJSON(list(x = x, a6 = unname(abbreviate(x, 6)), a11 = unname(abbreviate(x, 11)),
                               unique = unname(abbreviate(c(x[2], "splines::ns(x2, 2)2"), 6))),
                          pretty = TRUE), "abbreviate.json")
