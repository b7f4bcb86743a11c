"""Every call to AWS goes through here.

Clients come from the amazon provider's hooks; there is one gateway per service, and one place that
reads AWS errors.
"""
