"""tradewatch's stages (ingest, rules, notify) and what they share."""
