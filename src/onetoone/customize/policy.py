"""The contact policy: consent per channel and purpose, frequency caps over rolling windows,
suppression after repeated ignores, quiet hours in the customer's time zone.

The same object answers for real-time and batch decisions, so a campaign run cannot break a
rule that the API respects. It reads only the in-memory :class:`~onetoone.interact.profiles.
Profile`, which the service keeps current as events, consents and decisions arrive.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from onetoone.customize.profile import Profile
from onetoone.customize.settings import ContactPolicySettings

#: The main time zone of a country (first listed by the IANA database); others use the
#: workspace's unless ``[contact_policy] country_timezones`` says otherwise.
COUNTRY_TIMEZONES = {
    "FR": "Europe/Paris",
    "BE": "Europe/Brussels",
    "CH": "Europe/Zurich",
    "LU": "Europe/Luxembourg",
    "MC": "Europe/Monaco",
    "DE": "Europe/Berlin",
    "ES": "Europe/Madrid",
    "IT": "Europe/Rome",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "NL": "Europe/Amsterdam",
    "PT": "Europe/Lisbon",
    "AT": "Europe/Vienna",
    "PL": "Europe/Warsaw",
    "SE": "Europe/Stockholm",
    "DK": "Europe/Copenhagen",
    "NO": "Europe/Oslo",
    "GR": "Europe/Athens",
    "US": "America/New_York",
    "CA": "America/Toronto",
    "MA": "Africa/Casablanca",
    "DZ": "Africa/Algiers",
    "TN": "Africa/Tunis",
    "JP": "Asia/Tokyo",
    "CN": "Asia/Shanghai",
    "BR": "America/Sao_Paulo",
    "RE": "Indian/Reunion",
    "MQ": "America/Martinique",
    "GP": "America/Guadeloupe",
    "GF": "America/Cayenne",
    "NC": "Pacific/Noumea",
    "PF": "Pacific/Tahiti",
}


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _clock(text: str) -> time | None:
    if not text:
        return None
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


#: where each outbound channel finds the customer's address (``post``: the street address
#: of the golden record; its postcode, city and country go with it)
ADDRESS_OF = {"email": "email", "sms": "phone", "phone": "phone", "post": "address"}


class ContactPolicy:
    """``[contact_policy]`` applied to one customer's profile at a given time (UTC, naive)."""

    def __init__(self, settings: ContactPolicySettings, default_timezone: str) -> None:
        self.settings = settings
        self.outbound = frozenset(settings.outbound_channels)
        #: actions exempt from the caps (transactional messages): not counted as contacts
        self.exempt: frozenset[str] = frozenset()
        self.default_timezone = default_timezone
        self.quiet_start = _clock(settings.quiet_hours_start)
        self.quiet_end = _clock(settings.quiet_hours_end)
        self.quiet_channels = frozenset(settings.quiet_channels)
        self.max_days = max((c.days for c in settings.caps), default=1)
        self.zones = {
            **COUNTRY_TIMEZONES,
            **{k.upper(): v for k, v in settings.country_timezones.items()},
        }

    # -- consent ------------------------------------------------------------------------
    def consent(self, profile: Profile, channel: str, purpose: str) -> bool:
        """The latest consent row for (channel, purpose) wins; else the purpose's default on
        outbound channels, and yes on channels where the customer is present (web, store)."""
        found = profile.consents.get((channel, purpose))
        if found is not None:
            return found[0]
        if channel not in self.outbound:
            return True
        return self.settings.consent_defaults.get(purpose, False)

    # -- frequency ----------------------------------------------------------------------
    def cap_reached(self, profile: Profile, channel: str, now: datetime) -> str | None:
        """The first cap that one more contact on ``channel`` would break, in words."""
        if channel not in self.outbound:
            return None
        for cap in self.settings.caps:
            if cap.channel not in ("all", channel):
                continue
            since = now - timedelta(days=cap.days)
            used = sum(
                1
                for when, ch in profile.contacts
                if when > since and (cap.channel == "all" or ch == channel)
            )
            if used >= cap.max:
                return f"cap {cap.channel} {cap.max} per {cap.days} days"
        return None

    def record_contact(self, profile: Profile, channel: str, now: datetime) -> None:
        if channel in self.outbound:
            horizon = now - timedelta(days=self.max_days)
            profile.contacts = [c for c in profile.contacts if c[0] > horizon]
            profile.contacts.append((now, channel))

    def bounced(self, profile: Profile, channel: str) -> bool:
        """Whether the customer's address for ``channel`` bounced for good (a hard bounce):
        nothing more is sent to it, until the address changes."""
        field = ADDRESS_OF.get(channel)
        address = profile.attributes.get(field) if field else None
        return bool(address) and str(address).lower() in profile.bounced

    def release_contact(self, profile: Profile, channel: str, when: datetime) -> None:
        """A contact that did not happen (its message failed for good) no longer counts."""
        if (when, channel) in profile.contacts:
            profile.contacts.remove((when, channel))

    # -- ignores ------------------------------------------------------------------------
    def suppressed(self, profile: Profile, action_id: str, now: datetime) -> bool:
        count, last = profile.ignores.get(action_id, (0, None))
        if count < self.settings.suppress_after_ignores or last is None:
            return False
        return now - last < timedelta(days=self.settings.suppress_days)

    # -- quiet hours --------------------------------------------------------------------
    def timezone_of(self, profile: Profile) -> ZoneInfo:
        zone = profile.attributes.get("timezone")
        if not isinstance(zone, str) or not zone:
            country = profile.attributes.get("country")
            zone = (
                self.zones.get(str(country).upper(), self.default_timezone)
                if country
                else self.default_timezone
            )
        try:
            return _zone(zone)
        except Exception:
            return _zone(self.default_timezone)

    def quiet(self, profile: Profile, channel: str, now: datetime) -> bool:
        """True during quiet hours in the customer's time zone (``now`` is naive UTC)."""
        if channel not in self.quiet_channels or self.quiet_start is None or self.quiet_end is None:
            return False
        local = now.replace(tzinfo=_zone("UTC")).astimezone(self.timezone_of(profile)).time()
        start, end = self.quiet_start, self.quiet_end
        if start <= end:
            return start <= local < end
        return local >= start or local < end
