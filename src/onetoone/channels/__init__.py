"""Channels: deliver decisions to customers (e-mail over SMTP, SMS over an HTTP gateway, web
hooks, the outbox) and hear their answers (docs/channels.md)."""

from onetoone.channels.base import Channel, ChannelError, Message, Outcome
from onetoone.channels.delivery import Deliverer, Limits, Tally
from onetoone.channels.settings import ChannelConfig

__all__ = ["Channel", "ChannelConfig", "ChannelError", "Deliverer", "Limits", "Message",
           "Outcome", "Tally"]
