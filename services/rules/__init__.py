"""The rules stage: classify each item, evaluate the YAML rules, publish explained alerts."""
