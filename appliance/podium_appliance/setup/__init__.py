"""First boot and the setup wizard: what makes a fresh copy of the appliance into a set-up one.

At every boot :mod:`.firstboot` undoes an unconfirmed network change and repairs the certificate; until setup
is complete it also reads Xen Orchestra's deploy keys (:mod:`.deploy`) or shows the setup code
(:mod:`.setup_code`) on the console. The wizard (:mod:`.wizard`, its pages in ``templates/wizard``) checks
each step against reality (the admin's password in :mod:`.passwords`, the first pool in :mod:`.first_pool`),
and :mod:`.completion` ends it: the server configured and started, nginx switched to it, the wizard locked.
"""
