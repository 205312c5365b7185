# performance references for icc(by_group = TRUE): each grouping factor's share of the
# variance in VerbAgg's crossed model (subjects and items) and in a nested model of
# contraception, with insight's variance components.
# usage: Rscript make_icc_by_group.R DATA_DIR > icc_by_group.json
suppressMessages({library(lme4); library(performance); library(jsonlite)})
dir <- commandArgs(TRUE)[1]
verbagg <- read.csv(file.path(dir, "verbagg.csv"), stringsAsFactors = TRUE)
verbagg$id <- factor(verbagg$id)
contra <- read.csv(file.path(dir, "contraception.csv"), stringsAsFactors = TRUE)
contra$district <- factor(contra$district)
contra$livch <- factor(contra$livch)
one <- function(formula, data) {
  m <- glmer(as.formula(formula), data = data, family = binomial)
  by <- as.data.frame(icc(m, by_group = TRUE))
  v <- insight::get_variance(m)
  list(formula = formula, logLik = as.numeric(logLik(m)), group = as.character(by$Group),
       icc = as.numeric(by$ICC), var_intercept = as.list(v$var.intercept),
       var_residual = v$var.residual)
}
out <- list(
  versions = list(lme4 = as.character(packageVersion("lme4")),
                  performance = as.character(packageVersion("performance")),
                  insight = as.character(packageVersion("insight"))),
  cases = list(
    one("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", verbagg),
    one("use ~ age + urban + (1 | district/livch)", contra)
  )
)
cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE))
