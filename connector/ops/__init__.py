"""Operator actions: what ``edxml-connector status``, ``retry``, ``cancel``, ``send``, ``inbox``,
``quarantine``, ``status-send`` and ``journal backup`` do, without the command-line parsing.

Every action changes state only through the journal's transitions (and the agency side's own
methods), so nobody edits the database or moves files by hand, and every action leaves an event in
the item's history naming the operator as the actor. The command line (``connector.cli.
ops_commands``) is a thin layer over these functions; tests call them directly too.
"""
