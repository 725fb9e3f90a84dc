"""Display names for the codes pages show (marked for the catalog, translated when rendered)."""

from __future__ import annotations

from app.web.i18n import N_

ROLES = {
    "caseworker": N_("Caseworker"),
    "coordinator": N_("Coordinator"),
    "analyst": N_("Analyst"),
    "admin": N_("Administrator"),
}
CHANNELS = {
    "phone": N_("Phone"),
    "telegram": N_("Telegram"),
    "signal": N_("Signal"),
    "whatsapp": N_("WhatsApp"),
    "email": N_("Email"),
    "referral": N_("Referral"),
    "in_person": N_("In person"),
    "other": N_("Other"),
}
REGIONS = {
    "chechnya": N_("Chechnya"),
    "dagestan": N_("Dagestan"),
    "ingushetia": N_("Ingushetia"),
    "north_caucasus_other": N_("North Caucasus, other"),
    "moscow": N_("Moscow"),
    "st_petersburg": N_("St Petersburg"),
    "russia_other": N_("Russia, other"),
    "abroad": N_("Abroad"),
    "unknown": N_("Unknown"),
}
RISKS = {
    "low": N_("Low"),
    "medium": N_("Medium"),
    "high": N_("High"),
    "immediate": N_("Immediate danger"),
}
NEEDS = {
    "evacuation": N_("Evacuation"),
    "shelter": N_("Shelter"),
    "legal": N_("Legal help"),
    "medical": N_("Medical help"),
    "psychological": N_("Psychological support"),
    "documents": N_("Documents"),
    "financial": N_("Financial help"),
    "other": N_("Other"),
}
LANGUAGES = {
    "ru": N_("Russian"),
    "ce": N_("Chechen"),
    "av": N_("Avar"),
    "inh": N_("Ingush"),
    "dar": N_("Dargwa"),
    "lez": N_("Lezgian"),
    "kbd": N_("Kabardian"),
    "krc": N_("Karachay-Balkar"),
    "os": N_("Ossetian"),
    "uk": N_("Ukrainian"),
    "en": N_("English"),
    "other": N_("Other"),
}
STATUSES = {
    "new": N_("New"),
    "verifying": N_("Verifying"),
    "planning": N_("Planning"),
    "in_transit": N_("In transit"),
    "evacuated": N_("Evacuated"),
    "resettled": N_("Resettled"),
    "closed": N_("Closed"),
    "paused": N_("Paused"),
    "lost_contact": N_("Lost contact"),
    "declined": N_("Declined"),
    "rejected": N_("Rejected"),
}
# What the button that moves a case into each status says.
MOVE_TO = {
    "new": N_("Reopen as new"),
    "verifying": N_("Start verification"),
    "planning": N_("Move to planning"),
    "in_transit": N_("Mark in transit"),
    "evacuated": N_("Mark evacuated"),
    "resettled": N_("Mark resettled"),
    "closed": N_("Close case"),
    "paused": N_("Pause"),
    "lost_contact": N_("Lost contact"),
    "declined": N_("Person declined"),
    "rejected": N_("Reject (not genuine)"),
}
OUTCOMES = {
    "info_only": N_("Information only"),
    "referred": N_("Referred elsewhere"),
    "case_opened": N_("Case opened"),
    "no_follow_up": N_("No follow-up"),
    "duplicate": N_("Duplicate"),
    "suspected_infiltration": N_("Suspected infiltration"),
}
ATTENTION = {
    "verification_request": N_("Waiting for verification"),
    "immediate_danger": N_("Contact in immediate danger"),
    "known_bad": N_("Handle on the known-bad list"),
    "duplicate": N_("Possible duplicate to reconcile"),
    "duress": N_("Signed in with the duress password"),
}
# Names of sealed fields, for the history of corrections.
FIELDS = {
    "alias": N_("Name or alias they gave"),
    "handle": N_("Phone number or handle"),
    "notes": N_("Notes"),
    "full_name": N_("Full name"),
    "location": N_("Location"),
    "family_situation": N_("Family situation"),
    "text": N_("Note"),
    "note": N_("Note"),
}
FOUND_BY = {"code": N_("code"), "handle": N_("phone number or handle"), "alias": N_("name or alias")}
ALL = {
    "found_by": FOUND_BY,
    "fields": FIELDS,
    "attention": ATTENTION,
    "outcomes": OUTCOMES,
    "roles": ROLES,
    "channels": CHANNELS,
    "regions": REGIONS,
    "risks": RISKS,
    "needs": NEEDS,
    "languages": LANGUAGES,
    "statuses": STATUSES,
    "move_to": MOVE_TO,
}


def label(kind: str, code: str | None) -> str:
    """The untranslated display name of a code (templates translate it), or the code itself."""
    if code is None:
        return ""
    return ALL[kind].get(code, code)
