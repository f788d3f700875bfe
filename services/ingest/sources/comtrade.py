"""UN Comtrade records (``--source comtrade``): the built-in mapping, written like any other.

Columns as the Comtrade API and bulk files name them (``reporterCode, reporterISO, flowCode,
partnerCode, partnerISO, cmdCode, cmdDesc, qtyUnitCode, qty, netWgt, primaryValue, ...``).
Seen from the reporter: flow ``X`` from China (156, CHN) to North Korea (408, PRK) is an
export to KP; ``M`` the other way round. ``primaryValue`` is in US dollars. The report id is
the record's key (reporter, partner, flow, period, commodity and, where present, partner 2,
customs procedure and transport mode), so a record ingested again publishes nothing new.
"""

from __future__ import annotations

from services.ingest.sources.table import TableMapping, builtin

MAPPING_YAML = """
format: csv
id: [reporterCode, partnerCode, "partner2Code?", flowCode, period, cmdCode, "customsCode?", "motCode?"]
flow:
  column: {column: flowCode, required: true}
  reporter: {column: [reporterISO, reporterCode], required: true}
  partner: {column: [partnerISO, partnerCode], required: true}
report:
  reported_at: [period, refPeriodId, refYear]
item:
  hs_code: {column: cmdCode, required: true}
  description: cmdDesc
  quantity: [qty, altQty]
  unit:
    column: [qtyUnitAbbr, qtyUnitCode]
    map: {"-1": "", "1": "", "2": m2, "3": 1000 kWh, "4": m, "5": unit, "6": pair, "7": l, "8": kg,
          "9": 1000 units, "10": pack, "11": dozen, "12": m3, "13": carat}
  value: [primaryValue, fobvalue, cifvalue]
  currency: {value: USD}
notes:
  period: period
  customs procedure: [customsDesc, customsCode]
  transport mode: [motDesc, motCode]
  net weight (kg): netWgt
  gross weight (kg): grossWgt
  classification: classificationCode
"""

MAPPING: TableMapping = builtin("comtrade", MAPPING_YAML)
