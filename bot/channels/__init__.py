"""Channel adapters: how a message leaves us and how a provider's callbacks are read.

`bot.channels.sms` holds the provider-neutral SMS interface (what the workers and webhooks rely
on); each gateway (today `bot.channels.kannel`, later HTTP aggregators such as eSMS or SpeedSMS)
implements it, so nothing above this package knows which gateway carries the messages.
"""
