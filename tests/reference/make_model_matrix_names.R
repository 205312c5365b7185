# lme4's fixed-effect and random-effect column names for formulas where R's model-matrix
# conventions differ from formulaic's (variable order within interactions, contrasts or
# indicators for a factor of an interaction, logical values as factors, deparse spacing).
# glFormula builds the model without fitting it: its X is after lme4's drop of aliased
# columns. The table is made here and in tests/conftest.py (model_matrix_table) alike.
# usage: Rscript make_model_matrix_names.R  (in tests/reference; writes model_matrix_names.json,
# model_matrix_functions.json, model_matrix_operators.json, model_matrix_statistics.json and
# model_matrix_factors.json)
suppressMessages({library(lme4); library(jsonlite); library(splines)})
n <- 48
i <- 0:(n - 1)
d <- data.frame(
  y = (i * 7) %% 3 == 0,
  x1 = ((i * 37) %% 11 - 5) / 3,
  x2 = 1 + (i %% 5) / 2,
  f = factor(c("a", "b", "c")[i %% 3 + 1]),
  k = factor(c("hi", "lo")[(i %/% 3) %% 2 + 1]),
  m = factor(c("u", "v", "w", "x")[(i %/% 6) %% 4 + 1]),
  b = (i %% 4) < 2,
  g = factor(paste0("g", i %% 6)),
  ii = i %% 4
)
formulas <- c(
  "y ~ x1 + f/x1 - 1 + (1 | g)",
  "y ~ x2 + f/x1 + b:x1 + (1 | g)",
  "y ~ log(x2):f + x1 %in% f + (1 | g)",
  "y ~ k + f*k + (1 | g)",
  "y ~ x1*f - x1 + (1 | g)",
  "y ~ f:k + (1 | g)",
  "y ~ 0 + f:k + (1 | g)",
  "y ~ f:k + x1 + x1:x2 + (1 | g)",
  "y ~ f:k:m + (1 | g)",
  "y ~ f + k + f:k:m + (1 | g)",
  "y ~ f*k + f:m + (1 | g)",
  "y ~ 0 + x1:f + k + (1 | g)",
  "y ~ 0 + x1 + x1:f + f:k + (1 | g)",
  "y ~ 0 + x1 + f + (1 | g)",
  "y ~ I(x1 > 0) + (1 | g)",
  "y ~ 0 + I(x1 > 0) + b:x1 + (1 | g)",
  "y ~ I(x1 > 0):f + (1 | g)",
  "y ~ exp(x1/3) + I((x1 + 1)/2) + (1 | g)",
  "y ~ x1 + (0 + f:k | g)",
  "y ~ x1 + (x1:f | g)",
  "y ~ C(f, contr.sum)*k + (1 | g)",
  "y ~ k + C(f, contr.helmert):k + C(m, contr.SAS) + (1 | g)",
  "y ~ C(m, contr.treatment) + C(f, contr.poly) + (1 | g)",
  "y ~ dummy(k, \"lo\") + I(f == \"b\") + (1 + dummy(f, \"b\") || g)"
)
out <- lapply(formulas, function(fo) {
  m <- glFormula(as.formula(fo), data = d, family = binomial,
                 control = glmerControl(check.nobs.vs.nRE = "ignore", check.nobs.vs.nlev = "ignore"))
  list(formula = fo, fixed = colnames(m$X), random = unname(m$reTrms$cnms))
})
writeLines(toJSON(out, auto_unbox = FALSE, pretty = TRUE), "model_matrix_names.json")
# R's functions in a formula: names and values of the model matrix (the first 12 rows).
functions <- paste(
  "~ log(x2, 2) + pmin(x1, 1) + pmax(x1, 0) + ifelse(x1 > 0, 1, 0) + relevel(f, \"b\")",
  "+ interaction(f, k) + as.numeric(f) + as.factor(ii) + floor(x2) + ceiling(x1)",
  "+ I(ii %% 3) + I(ii %/% 3) + as.logical(ii) + ns(x1, 3) + ns(x2, df = 2)",
  "+ cut(x1, 3) + cut(x2, 2, right = FALSE) + cut(x1, c(-Inf, 0, 1, Inf))",
  "+ cut(x2, 2, include.lowest = TRUE, dig.lab = 2) + ns(x2, df = 2, Boundary.knots = c(0, 4))",
  "+ dummy(f, c(\"b\", \"c\")) + ns(x1, df = 3, Boundary.knots = c(-1, 1))")
X <- model.matrix(as.formula(functions), d)
# ns() on new data: the fit's knots, linear beyond the boundary knots.
beyond <- c(-3, 0.1, 2.5)
writeLines(toJSON(list(rhs = functions, columns = colnames(X), rows = unname(X[1:12, ]),
                       ns_new_x1 = beyond, ns_new = unname(predict(ns(d$x1, 3), beyond)[, ])),
                  digits = NA, pretty = TRUE), "model_matrix_functions.json")
# The model matrix (names, every row) of a right-hand side, as JSON.
matrix_of <- function(rhs) {
  X <- model.matrix(as.formula(rhs), d)
  list(rhs = rhs, columns = colnames(X), rows = unname(X))
}
write_matrix <- function(rhs, file) {
  writeLines(toJSON(matrix_of(rhs), digits = NA, pretty = TRUE), file)
}
# R's operators inside expressions (arithmetic and logic there, not model terms): ^, !, &, |
# with R's precedence, and %in% as value matching.
write_matrix(paste(
  "~ I(x1 > 0 & b) + I(!b) + I(f %in% c(\"a\", \"b\")) + ifelse(x1 > 0 | x2 > 2, 1, 0)",
  "+ log(x2^2) + I((x1 > 0 | b) & x2 > 2) + I(!(x1 > 0 & b)) + I((ii + 1) %in% c(2, 3))",
  "+ exp(-x1^2) + I(x1 > 0 & x2 > 1.5 & !b) + I(m %in% c(\"u\") | k == \"lo\")",
  "+ I(!x1 > 0) + pmin(x2^2, 4)"), "model_matrix_operators.json")
# R's summaries and distribution functions inside expressions, factor() with labels and
# ordered factors (orthogonal polynomial contrasts), qualified calls (splines::ns), is.na.
write_matrix(paste(
  "~ I(x1 - mean(x1)) + I(x1/sd(x1)) + I(x1 >= median(x1)) + I(x2/max(x2)) + I(x2 - min(x2))",
  "+ sin(x1) + cos(x1) + plogis(x1) + qlogis(plogis(x1/2)) + pnorm(x1) + qnorm(pnorm(x1/3))",
  "+ ordered(m) + factor(f, labels = c(\"A\", \"B\", \"C\")) + factor(k, levels = c(\"lo\", \"hi\"))",
  "+ I(x2/var(x2)) + I(x1/sum(x2)) + factor(ii, labels = \"n\")",
  "+ splines::ns(x1, 2) + stats::poly(x2, 2, raw = TRUE) + base::log(x2 + 1)",
  "+ I(ifelse(is.na(x1), 0, x1)) + as.vector(scale(x2)) + stats::plogis(x1/3)"),
  "model_matrix_statistics.json")
# C(): every way R names a contrast (a bare name of R's list, a contrast function, its name as
# text, a contrast matrix, how.many), with and without an intercept (indicators then), in an
# interaction, of factor(), of ordered() and of a factor with its own levels' order.
contrasts <- c(
  "~ C(f, sum) + C(m, helmert) + C(k, SAS) + C(m, treatment):x1",
  "~ C(f, poly) + C(m, contr.treatment(4, base = 3)) + C(k, \"contr.sum\") + x2",
  "~ C(m, sum, 2) + C(f, contr = helmert) + C(m, contr.sum(4)):C(k, treatment)",
  "~ 0 + C(f, sum) + C(m, helmert) + x1",
  "~ C(factor(ii), contr.helmert) + C(factor(f, levels = c(\"c\", \"b\", \"a\")), sum)",
  "~ C(ordered(m), helmert) + C(m, contr.poly(4, scores = c(1, 2, 4, 8))) + C(k, contr.SAS)"
)
# levels(), rev(), rank() (ties at their average), droplevels() and pi.
levels_rhs <- "~ rank(x2) + rev(x1) + factor(f, levels = rev(levels(f))) + droplevels(m) + I(x1 * pi)"
# glmer's contrasts argument (model.matrix's contrasts.arg): names, matrices, indicators where
# the factor is coded in full (its contrast then unused).
with_contrasts <- function(rhs, contrasts) {
  X <- model.matrix(as.formula(rhs), d, contrasts.arg = contrasts)
  list(rhs = rhs, columns = colnames(X), rows = unname(X))
}
argument <- list(
  with_contrasts("~ f*x1 + m + k + f:k",
                 list(f = "contr.sum", m = cbind(lin = c(-3, -1, 1, 3)), k = "contr.SAS")),
  with_contrasts("~ 0 + f + m + x2", list(f = "contr.helmert", m = "contr.poly"))
)
writeLines(toJSON(list(contrasts = lapply(contrasts, matrix_of), levels = matrix_of(levels_rhs),
                       argument = argument),
                  digits = NA, pretty = TRUE), "model_matrix_factors.json")
# relevel() of factor() (of numbers, and with its own levels' order) and of a factor, in an
# interaction: the names and values of R's model matrix (every row).
relevel_rhs <- paste(
  "~ relevel(factor(ii), ref = \"2\") + relevel(factor(x2, levels = c(3, 1, 1.5, 2, 2.5)), \"2\")",
  "+ relevel(f, \"c\"):x1")
writeLines(toJSON(matrix_of(relevel_rhs), digits = NA, pretty = TRUE), "model_matrix_relevel.json")
# R's trigonometric, hyperbolic and gamma-family functions: names and values (every row).
write_matrix(paste(
  "~ asin(x2/4) + acos(x2/4) + atan(x1) + sinh(x1) + cosh(x1) + tanh(x1) + asinh(x1)",
  "+ acosh(x2) + atanh(x1/2) + gamma(x2) + lgamma(x2) + digamma(x2) + trigamma(x2)",
  "+ factorial(x2) + lfactorial(x2)"), "model_matrix_math.json")
# R's sequences a:b of two numbers inside expressions (and in c()): names and values.
write_matrix("~ I(ii %in% 1:2) + I((ii - 2) %in% -1:0) + I(x2 %in% c(1:2, 3)) + I(ii %in% 3:1)",
             "model_matrix_sequences.json")
