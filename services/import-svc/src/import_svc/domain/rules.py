"""HubSpot's import rules (pure: no I/O): which property finds a row's record, which records of a row
are associated, what a line item takes from its product, and which company an email address speaks for."""

from __future__ import annotations

from typing import Any

from crm_common.object_types import COMPANY, CONTACT, DEAL, LINE_ITEM, PRODUCT

from import_svc.domain.plan import ColumnMapping

# What a line item takes from its product when the row leaves it out, as HubSpot fills a line item
# created from a product (only those the line item type defines are copied).
PRODUCT_INHERITED_PROPERTIES = ("name", "price", "description", "hs_sku", "hs_cost_of_goods_sold",
                                "recurringbillingfrequency", "hs_recurring_billing_period")
# A line item belongs to its deal only: a row's other records (its contact, its company) are not linked to it.
LINE_ITEM_PARENTS = frozenset({DEAL})
# Mail providers whose domain says nothing about the contact's company.
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com", "aol.com",
    "icloud.com", "me.com", "mail.com", "gmx.de", "gmx.net", "web.de", "proton.me", "protonmail.com",
    "yandex.ru", "msn.com", "orange.fr", "free.fr", "qq.com", "163.com",
})


def unique_key_property(type_id: str, columns: list[ColumnMapping], catalog: dict[str, dict[str, Any]]) -> str | None:
    """The property that finds a row's existing record: email, a company's domain, or a unique property."""
    names = [c.property_name for c in columns]
    if type_id == CONTACT and "email" in names:
        return "email"
    if type_id == COMPANY and "domain" in names:
        return "domain"
    for c in columns:
        if c.property_name and (catalog.get(c.property_name) or {}).get("hasUniqueValue"):
            return c.property_name
    return None


def company_domain_of(email: str) -> str | None:
    """The company domain an email address speaks for; None for free-mail providers and non-addresses."""
    email = email.strip().lower()
    domain = email.rsplit("@", 1)[-1] if "@" in email else ""
    return domain if domain and domain not in FREE_MAIL_DOMAINS else None


def linked_in_a_row(a: str, b: str) -> bool:
    """Whether the records of two object types on one row are associated with each other."""
    if PRODUCT in (a, b):
        return False  # products are never associated; line items point at them by hs_product_id
    if LINE_ITEM in (a, b):
        return (b if a == LINE_ITEM else a) in LINE_ITEM_PARENTS
    return True
