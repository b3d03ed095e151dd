"""The box: the appliance's own configuration and services, as setup, the updater and the console change them.

Commands on the system (:mod:`.system`), its addresses (:mod:`.addresses`), network (:mod:`.network`),
host name and time (:mod:`.host`), the HTTPS certificate (checked in :mod:`.tls_check`, installed by
:mod:`.tls_install`), nginx in front (:mod:`.proxy`, its template in ``templates/nginx``), XenStore
(:mod:`.xenstore`) and what the pool is told through it (:mod:`.guest_metrics`), the Podium server as the
other parts reach it (:mod:`.server`), and the health check of it all (:mod:`.check`).
"""
