"""History: what the report archive says over time, and what a change would have meant for it.

Above the stages in the import contract (below the command line): a backtest runs the rules
stage's pure engine over archived reports, a lookback screens them with the sanctions lists and
records its hits as cases, flows count them by month. Each core is a function returning a
result with ``as_dict()``, for the command line and the console alike.
"""
