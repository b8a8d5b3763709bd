"""A sweep's results: trial folders → Parquet tables → statistics, paper tables, plots and SQL."""
