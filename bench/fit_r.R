# Time warm fits of one binomial GLMM with lme4::glmer or glmmTMB and print a JSON record.
# usage: Rscript fit_r.R DATA.csv 'FORMULA' ENGINE(glmer|glmmTMB) REPS [factor columns...]
# One untimed fit first (warm-up), then REPS timed fits; logLik is the Laplace logLik.
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
a <- commandArgs(TRUE)
d <- read.csv(a[1], stringsAsFactors = TRUE)
fo <- as.formula(a[2]); engine <- a[3]; reps <- as.integer(a[4])
for (col in a[-(1:4)]) d[[col]] <- factor(d[[col]])
fit1 <- function() {
  if (engine == "glmer") glmer(fo, data = d, family = binomial)
  else glmmTMB(fo, data = d, family = binomial)
}
m <- fit1()
times <- sapply(seq_len(reps), function(i) system.time(m <<- fit1())[["elapsed"]])
out <- list(engine = engine, logLik = as.numeric(logLik(m)), seconds = times,
  version = as.character(packageVersion(ifelse(engine == "glmer", "lme4", "glmmTMB"))))
cat(toJSON(out, auto_unbox = TRUE, digits = NA), "\n")
