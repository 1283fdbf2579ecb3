"""The properties HubSpot predefines per object type, and their groups."""

from __future__ import annotations

from records_svc.domain.properties import PropertyDefinition, PropertyOption

LIFECYCLE_STAGES = (
    ("Subscriber", "subscriber"), ("Lead", "lead"), ("Marketing Qualified Lead", "marketingqualifiedlead"),
    ("Sales Qualified Lead", "salesqualifiedlead"), ("Opportunity", "opportunity"), ("Customer", "customer"),
    ("Evangelist", "evangelist"), ("Other", "other"),
)
LEAD_STATUSES = (("New", "NEW"), ("Open", "OPEN"), ("In Progress", "IN_PROGRESS"),
                 ("Open Deal", "OPEN_DEAL"), ("Unqualified", "UNQUALIFIED"),
                 ("Attempted to Contact", "ATTEMPTED_TO_CONTACT"), ("Connected", "CONNECTED"),
                 ("Bad Timing", "BAD_TIMING"))
ANALYTICS_SOURCES = (("Organic Search", "ORGANIC_SEARCH"), ("Paid Search", "PAID_SEARCH"),
                     ("Email Marketing", "EMAIL_MARKETING"), ("Organic Social", "SOCIAL_MEDIA"),
                     ("Referrals", "REFERRALS"), ("Other Campaigns", "OTHER_CAMPAIGNS"),
                     ("Direct Traffic", "DIRECT_TRAFFIC"), ("Offline Sources", "OFFLINE"),
                     ("Paid Social", "PAID_SOCIAL"), ("AI Referrals", "AI_REFERRALS"))
LEGAL_BASES = (("Legitimate interest – prospect/lead", "Legitimate interest – prospect/lead"),
               ("Legitimate interest - existing customer", "Legitimate interest - existing customer"),
               ("Legitimate interest - other", "Legitimate interest - other"),
               ("Performance of a contract", "Performance of a contract"),
               ("Freely given consent from contact", "Freely given consent from contact"),
               ("Not applicable", "Not applicable"))
MARKETABLE_STATUSES = (("Marketing contact", "true"), ("Non-marketing contact", "false"))
DEAL_STAGES = (("Appointment Scheduled", "appointmentscheduled"), ("Qualified To Buy", "qualifiedtobuy"),
               ("Presentation Scheduled", "presentationscheduled"),
               ("Decision Maker Bought-In", "decisionmakerboughtin"),
               ("Contract Sent", "contractsent"), ("Closed Won", "closedwon"), ("Closed Lost", "closedlost"))
TICKET_STAGES = (("New", "1"), ("Waiting on contact", "2"), ("Waiting on us", "3"), ("Closed", "4"))
PRIORITIES = (("Low", "LOW"), ("Medium", "MEDIUM"), ("High", "HIGH"), ("Urgent", "URGENT"))
COMPANY_TYPES = (("Prospect", "PROSPECT"), ("Partner", "PARTNER"), ("Reseller", "RESELLER"),
                 ("Vendor", "VENDOR"), ("Other", "OTHER"))
CALL_DIRECTIONS = (("Inbound", "INBOUND"), ("Outbound", "OUTBOUND"))
TASK_STATUSES = (("Not started", "NOT_STARTED"), ("In progress", "IN_PROGRESS"), ("Waiting", "WAITING"),
                 ("Completed", "COMPLETED"), ("Deferred", "DEFERRED"))
TASK_TYPES = (("Call", "CALL"), ("Email", "EMAIL"), ("To-do", "TODO"))
EMAIL_DIRECTIONS = (("Email", "EMAIL"), ("Incoming email", "INCOMING_EMAIL"), ("Forwarded email", "FORWARDED_EMAIL"))
MEETING_OUTCOMES = (("Scheduled", "SCHEDULED"), ("Completed", "COMPLETED"), ("Rescheduled", "RESCHEDULED"),
                    ("No show", "NO_SHOW"), ("Canceled", "CANCELED"))


def _options(pairs: tuple[tuple[str, str], ...]) -> tuple[PropertyOption, ...]:
    return tuple(PropertyOption(label=label, value=value, display_order=i) for i, (label, value) in enumerate(pairs))


def text(name: str, label: str, group: str, **kw: object) -> PropertyDefinition:
    return PropertyDefinition(name=name, label=label, type="string", field_type=kw.pop("field_type", "text"),
                              group_name=group, **kw)  # type: ignore[arg-type]


def number(name: str, label: str, group: str, **kw: object) -> PropertyDefinition:
    return PropertyDefinition(name=name, label=label, type="number", field_type="number", group_name=group, **kw)  # type: ignore[arg-type]


def choice(name: str, label: str, group: str, pairs: tuple[tuple[str, str], ...], field_type: str = "select",
           **kw: object) -> PropertyDefinition:
    return PropertyDefinition(name=name, label=label, type="enumeration", field_type=field_type, group_name=group,
                              options=_options(pairs), **kw)  # type: ignore[arg-type]


def when(name: str, label: str, group: str, kind: str = "datetime", **kw: object) -> PropertyDefinition:
    return PropertyDefinition(name=name, label=label, type=kind, field_type="date", group_name=group, **kw)  # type: ignore[arg-type]


def flag(name: str, label: str, group: str, **kw: object) -> PropertyDefinition:
    return PropertyDefinition(name=name, label=label, type="bool", field_type="booleancheckbox", group_name=group,
                              options=_options((("Yes", "true"), ("No", "false"))), **kw)  # type: ignore[arg-type]


def _system(last_modified: str) -> list[PropertyDefinition]:
    group = "system"
    return [
        number("hs_object_id", "Record ID", group, read_only_value=True, form_field=False),
        when("createdate", "Create Date", group, form_field=False),
        when(last_modified, "Last Modified Date", group, read_only_value=True, form_field=False),
        text("hs_merged_object_ids", "Merged Record IDs", group, read_only_value=True, form_field=False),
        text("hs_object_source", "Record source", group, read_only_value=True, form_field=False),
        text("hs_object_source_id", "Record source ID", group, read_only_value=True, form_field=False),
        text("hs_object_source_label", "Record source label", group, read_only_value=True, form_field=False),
        text("hs_object_source_detail_1", "Record source detail 1", group, read_only_value=True, form_field=False),
        text("hs_object_source_detail_2", "Record source detail 2", group, read_only_value=True, form_field=False),
        text("hs_created_by_user_id", "Created by user ID", group, read_only_value=True, form_field=False),
        text("hs_unique_creation_key", "Unique creation key", group, read_only_value=True, form_field=False),
        text("hs_import_id", "Import ID", group, read_only_value=True, form_field=False),
    ]


SYNC_SERVICE = "sync-svc"


def _salesforce(*ids: tuple[str, str]) -> list[PropertyDefinition]:
    """HubSpot's read-only Salesforce sync properties: the linked record's id and the last sync time. Only the
    sync service writes them; they are searchable like any property."""
    group = "salesforceinformation"
    return [*(text(name, label, group, read_only_value=True, form_field=False, written_by=SYNC_SERVICE)
              for name, label in ids),
            when("salesforcelastsynctime", "Last Salesforce Sync Time", group, read_only_value=True,
                 form_field=False, written_by=SYNC_SERVICE)]


def _owner(group: str) -> PropertyDefinition:
    return text("hubspot_owner_id", "Owner", group)


def _contacts() -> list[PropertyDefinition]:
    g = "contactinformation"
    a = "analyticsinformation"
    return [
        PropertyDefinition(name="email", label="Email", type="string", field_type="text", group_name=g,
                           has_unique_value=True, value_kind="email"),
        PropertyDefinition(name="hs_additional_emails", label="Additional email addresses", type="enumeration",
                           field_type="checkbox", group_name=g, value_kind="emails"),
        text("firstname", "First Name", g), text("lastname", "Last Name", g),
        text("phone", "Phone Number", g, field_type="phonenumber"),
        text("mobilephone", "Mobile Phone Number", g, field_type="phonenumber"),
        text("fax", "Fax Number", g), text("company", "Company Name", g), text("jobtitle", "Job Title", g),
        text("website", "Website URL", g), text("address", "Street Address", g), text("city", "City", g),
        text("state", "State/Region", g), text("zip", "Postal Code", g), text("country", "Country/Region", g),
        text("industry", "Industry", g), text("salutation", "Salutation", g),
        when("date_of_birth", "Date of birth", g, kind="date"),
        choice("lifecyclestage", "Lifecycle Stage", g, LIFECYCLE_STAGES, field_type="radio"),
        choice("hs_lead_status", "Lead Status", g, LEAD_STATUSES),
        _owner(g),
        flag("hs_email_optout", "Unsubscribed from all email", g),
        choice("hs_marketable_status", "Marketing contact status", g, MARKETABLE_STATUSES),
        choice("hs_legal_basis", "Legal basis for processing contact's data", g, LEGAL_BASES, field_type="checkbox"),
        number("num_conversion_events", "Number of Form Submissions", "conversioninformation"),
        number("num_unique_conversion_events", "Number of Unique Forms Submitted", "conversioninformation"),
        when("first_conversion_date", "First Conversion Date", "conversioninformation"),
        when("recent_conversion_date", "Recent Conversion Date", "conversioninformation"),
        number("hs_analytics_num_page_views", "Number of Pageviews", a),
        number("hs_analytics_num_visits", "Number of Sessions", a),
        number("hs_analytics_num_event_completions", "Number of event completions", a),
        choice("hs_analytics_source", "Original Traffic Source", a, ANALYTICS_SOURCES),
        text("hs_analytics_source_data_1", "Original Traffic Source Drill-Down 1", a),
        text("hs_analytics_source_data_2", "Original Traffic Source Drill-Down 2", a),
        when("hs_analytics_first_timestamp", "Time First Seen", a),
        *_salesforce(("salesforcecontactid", "Salesforce Contact ID"), ("salesforceleadid", "Salesforce Lead ID")),
        *_system("lastmodifieddate"),
    ]


def _companies() -> list[PropertyDefinition]:
    g = "companyinformation"
    a = "analyticsinformation"
    return [
        text("name", "Company name", g),
        PropertyDefinition(name="domain", label="Company Domain Name", type="string", field_type="text",
                           group_name=g, value_kind="domain"),
        PropertyDefinition(name="hs_additional_domains", label="Additional Domains", type="enumeration",
                           field_type="checkbox", group_name=g, value_kind="domains"),
        text("website", "Website URL", g), text("phone", "Phone Number", g, field_type="phonenumber"),
        text("address", "Street Address", g), text("city", "City", g), text("state", "State/Region", g),
        text("zip", "Postal Code", g), text("country", "Country/Region", g), text("industry", "Industry", g),
        text("description", "Description", g, field_type="textarea"),
        number("numberofemployees", "Number of Employees", g), number("annualrevenue", "Annual Revenue", g),
        choice("type", "Type", g, COMPANY_TYPES),
        choice("lifecyclestage", "Lifecycle Stage", g, LIFECYCLE_STAGES, field_type="radio"),
        _owner(g),
        number("hs_analytics_num_page_views", "Number of Pageviews", a),
        number("hs_analytics_num_visits", "Number of Sessions", a),
        choice("hs_analytics_source", "Original Traffic Source", a, ANALYTICS_SOURCES),
        text("hs_analytics_source_data_1", "Original Traffic Source Drill-Down 1", a),
        text("hs_analytics_source_data_2", "Original Traffic Source Drill-Down 2", a),
        *_salesforce(("salesforceaccountid", "Salesforce Account ID")),
        *_system("hs_lastmodifieddate"),
    ]


def _deals() -> list[PropertyDefinition]:
    g = "dealinformation"
    return [
        text("dealname", "Deal Name", g), number("amount", "Amount", g), when("closedate", "Close Date", g),
        choice("pipeline", "Pipeline", g, (("Sales Pipeline", "default"),)),
        choice("dealstage", "Deal Stage", g, DEAL_STAGES),
        choice("dealtype", "Deal Type", g, (("New Business", "newbusiness"), ("Existing Business", "existingbusiness"))),
        text("description", "Deal Description", g, field_type="textarea"),
        choice("hs_priority", "Priority", g, PRIORITIES[:3]),
        _owner(g), *_salesforce(("salesforceopportunityid", "Salesforce Opportunity ID")),
        *_system("hs_lastmodifieddate"),
    ]


def _tickets() -> list[PropertyDefinition]:
    g = "ticketinformation"
    return [
        text("subject", "Ticket name", g), text("content", "Ticket description", g, field_type="textarea"),
        choice("hs_pipeline", "Pipeline", g, (("Support Pipeline", "0"),)),
        choice("hs_pipeline_stage", "Ticket status", g, TICKET_STAGES),
        choice("hs_ticket_priority", "Priority", g, PRIORITIES),
        text("hs_ticket_category", "Category", g), text("source_type", "Source", g),
        _owner(g), *_system("hs_lastmodifieddate"),
    ]


def _products() -> list[PropertyDefinition]:
    g = "productinformation"
    return [
        text("name", "Name", g), text("description", "Description", g, field_type="textarea"),
        number("price", "Unit price", g), text("hs_sku", "SKU", g),
        number("hs_cost_of_goods_sold", "Unit cost", g), text("recurringbillingfrequency", "Billing frequency", g),
        *_system("hs_lastmodifieddate"),
    ]


def _line_items() -> list[PropertyDefinition]:
    g = "lineiteminformation"
    return [
        text("name", "Name", g), number("price", "Unit price", g), number("quantity", "Quantity", g),
        number("amount", "Net price", g), number("discount", "Unit discount", g),
        number("hs_product_id", "Product ID", g), text("hs_sku", "SKU", g),
        *_system("hs_lastmodifieddate"),
    ]


def _activity(extra: list[PropertyDefinition]) -> list[PropertyDefinition]:
    g = "engagementinformation"
    return [when("hs_timestamp", "Activity date", g), _owner(g), *extra, *_system("hs_lastmodifieddate")]


def _calls() -> list[PropertyDefinition]:
    g = "callinformation"
    return _activity([text("hs_call_title", "Call Title", g), text("hs_call_body", "Call notes", g, field_type="html"),
                      number("hs_call_duration", "Call duration (ms)", g),
                      choice("hs_call_direction", "Call direction", g, CALL_DIRECTIONS),
                      text("hs_call_status", "Call status", g), text("hs_call_disposition", "Call outcome", g)])


def _emails() -> list[PropertyDefinition]:
    g = "emailinformation"
    return _activity([text("hs_email_subject", "Email subject", g), text("hs_email_text", "Email body", g,
                                                                          field_type="textarea"),
                      text("hs_email_html", "Email HTML", g, field_type="html"),
                      choice("hs_email_direction", "Email direction", g, EMAIL_DIRECTIONS),
                      text("hs_email_status", "Email send status", g)])


def _meetings() -> list[PropertyDefinition]:
    g = "meetinginformation"
    return _activity([text("hs_meeting_title", "Meeting name", g),
                      text("hs_meeting_body", "Meeting description", g, field_type="html"),
                      when("hs_meeting_start_time", "Meeting start time", g),
                      when("hs_meeting_end_time", "Meeting end time", g),
                      choice("hs_meeting_outcome", "Meeting outcome", g, MEETING_OUTCOMES),
                      text("hs_meeting_location", "Location", g)])


def _notes() -> list[PropertyDefinition]:
    return _activity([text("hs_note_body", "Note body", "noteinformation", field_type="html")])


def _tasks() -> list[PropertyDefinition]:
    g = "taskinformation"
    return _activity([text("hs_task_subject", "Task title", g), text("hs_task_body", "Task notes", g, field_type="html"),
                      choice("hs_task_status", "Task status", g, TASK_STATUSES),
                      choice("hs_task_priority", "Priority", g, (("None", "NONE"),) + PRIORITIES[:3]),
                      choice("hs_task_type", "Task type", g, TASK_TYPES)])


STANDARD_PROPERTIES: dict[str, dict[str, PropertyDefinition]] = {
    type_id: {p.name: p for p in builder()}
    for type_id, builder in {
        "0-1": _contacts, "0-2": _companies, "0-3": _deals, "0-5": _tickets, "0-7": _products,
        "0-8": _line_items, "0-48": _calls, "0-49": _emails, "0-47": _meetings, "0-46": _notes, "0-27": _tasks,
    }.items()
}

# Custom objects start with the system properties only; their own come from their schema.
CUSTOM_OBJECT_BASE_PROPERTIES: dict[str, PropertyDefinition] = {p.name: p for p in _system("hs_lastmodifieddate")}

GROUP_LABELS = {
    "contactinformation": "Contact information", "companyinformation": "Company information",
    "dealinformation": "Deal information", "ticketinformation": "Ticket information",
    "productinformation": "Product information", "lineiteminformation": "Line item information",
    "engagementinformation": "Activity information", "callinformation": "Call information",
    "emailinformation": "Email information", "meetinginformation": "Meeting information",
    "noteinformation": "Note information", "taskinformation": "Task information",
    "analyticsinformation": "Web analytics history", "conversioninformation": "Conversion information",
    "salesforceinformation": "Salesforce information",
    "system": "System information",
}


def standard_groups(object_type_id: str) -> dict[str, str]:
    names = dict.fromkeys(p.group_name for p in STANDARD_PROPERTIES.get(object_type_id,
                                                                         CUSTOM_OBJECT_BASE_PROPERTIES).values())
    if object_type_id.startswith("2-"):
        names.setdefault(f"{object_type_id.replace('-', '_')}_information", None)
    return {name: GROUP_LABELS.get(name, name) for name in names}
