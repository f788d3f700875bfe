"""The goods of the trade: the item catalog (HS codes, categories, terms in three languages)."""
