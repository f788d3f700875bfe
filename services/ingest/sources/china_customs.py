"""A China-customs-style table (``--source china-customs``): the built-in mapping.

The columns of the GACC statistics (headers in English or as the customs site writes them in
Chinese): 8-digit HS code (商品编码), goods (商品名称), partner country (贸易伙伴名称), trade
mode (贸易方式名称, e.g. 边境小额贸易 border petty trade), registered province of the
consignor (注册地名称), value in US dollars (美元), quantity and unit (第一数量, 第一计量单位),
net weight, month. China is the reporter; a row is an export unless a flow column says import.
Rows have no id of their own: the report id is a hash of the row.
"""

from __future__ import annotations

from services.ingest.sources.table import TableMapping, builtin

MAPPING_YAML = """
format: csv
flow:
  column: [flow, 进出口]
  reporter: {value: CN}
  partner: {column: [partner, partner_country, 贸易伙伴名称, 贸易伙伴], required: true}
  exports: [export, exports, X, 出口]
  imports: [import, imports, M, 进口]
  default: export
report:
  reported_at: [month, period, 数据年月]
  crossing: [customs_district, port, 关区, 海关]
item:
  hs_code: {column: [hs_code, hs, 商品编码], required: true}
  description: [description, goods, 商品名称]
  quantity: [quantity, 第一数量, 数量]
  unit:
    column: [unit, 第一计量单位, 计量单位]
    map: {台: unit, 个: unit, 件: piece, 套: set, 辆: vehicle, 艘: vessel, 千克: kg, 公斤: kg, 吨: t, 米: m}
  value: {column: [value_usd, us_dollars, usd, 美元], required: true}
  currency: {value: USD}
notes:
  trade mode:
    column: [trade_mode, 贸易方式名称, 贸易方式]
    map: {边境小额贸易: border petty trade (边境小额贸易), 一般贸易: general trade (一般贸易),
          对外承包工程出口货物: overseas contracting project (对外承包工程出口货物)}
  province: [province, registered_province, 注册地名称, 注册地]
  net weight (kg): [net_weight_kg, net_weight, 净重]
"""

MAPPING: TableMapping = builtin("china-customs", MAPPING_YAML)
