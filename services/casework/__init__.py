"""Casework: what people do with cases, and who may do it.

Every function here takes the store and the acting user's name, checks the user's role, does one
thing in one transaction and appends what it did to the audit trail (who, when, what, before and
after); the command line (``commands``) and a web console call the same functions. Bad input is
refused with a plain sentence (:class:`Refused`) and changes nothing; a refused access is refused
the same way (:class:`AccessRefused`) and recorded in the audit trail.

- ``access``: users' roles, the check, the audit of a refusal;
- ``users``: users, passwords (argon2), logins, the first admin;
- ``workflow``: cases listed and shown, assigned, commented, closed, reopened, approved;
- ``records``: alerts written into cases (the records stage);
- ``screening``: reviewed "not this party" exceptions, published for the rules stage;
- ``trail``: the audit trail verified, exported and purged past its retention.
"""
