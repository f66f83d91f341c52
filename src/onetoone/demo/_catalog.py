"""The demo company's catalog of actions and its campaigns (part of its ``onetoone.toml``).

Rules read only profile fields (golden record, ``customer_scores`` columns and keys of its
``scores`` JSON) or the request's context (``context_*``); every purpose is a default consent
purpose. Treatments are French and English.
"""

from __future__ import annotations

#: the win-back campaign that ``onetoone demo`` runs
WINBACK = "winback"

_HELLO_FR = "Bonjour{% if first_name %} {{ first_name|title }}{% endif %},"
_HELLO_EN = "Hello{% if first_name %} {{ first_name|title }}{% endif %},"
_STOP_FR = "STOP au 36180"
_STOP_EN = "STOP to 36180"

#: a suggestion that follows the customer's needs segment (``needs_segment`` names the
#: categories and habits that set the segment apart, e.g. "linge de maison buyers, web
#: shoppers")
_PICK_FR = ("{% set s = needs_segment or '' %}"
            "{% if 'mode' in s or 'chaussures' in s or 'accessoires' in s %}"
            "notre décoration et notre linge de maison, pour aller avec votre style"
            "{% elif 'linge' in s or 'cuisine' in s or 'mobilier' in s or 'luminaire' in s %}"
            "notre nouvelle collection mode et accessoires"
            "{% elif 'décoration' in s %}notre vaisselle et nos luminaires"
            "{% else %}nos nouveautés de la saison{% endif %}")
_PICK_EN = ("{% set s = needs_segment or '' %}"
            "{% if 'mode' in s or 'chaussures' in s or 'accessoires' in s %}"
            "our home decoration and linen, to match your style"
            "{% elif 'linge' in s or 'cuisine' in s or 'mobilier' in s or 'luminaire' in s %}"
            "our new fashion and accessories collection"
            "{% elif 'décoration' in s %}our tableware and lamps"
            "{% else %}this season's new arrivals{% endif %}")


def _q(text: str) -> str:
    """A TOML basic string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _treatment(action: str, channel: str, language: str, **fields: str) -> str:
    lines = [f"[actions.{action}.treatments.{channel}.{language}]"]
    lines += [f"{name} = {_q(text)}" for name, text in fields.items()]
    return "\n".join(lines)


def _action(name: str, header: str, *treatments: str) -> str:
    return "\n".join([f"[actions.{name}]", header.strip(), *treatments])


CATALOG_TOML = "\n\n".join([
    _action(
        "welcome", """
issue = "growth"
group = "onboarding"
kind = "message"
channels = ["email", "sms"]
# first purchase in the last 8 weeks, none since (T and frequency are in weeks and repeats)
eligibility = "0 < T <= 8 and frequency == 0"
value = 15
prior_propensity = 0.08
""",
        _treatment("welcome", "email", "fr",
                   subject="Bienvenue chez Maison Aurore{% if first_name %}, "
                           "{{ first_name|title }}{% endif %} !",
                   body=f"{_HELLO_FR}\n\nMerci pour votre premier achat. Pour votre deuxième "
                        "commande, -10 % avec le code BIENVENUE10, en boutique comme sur "
                        "maison-aurore.fr (30 jours).\n\nL'équipe Maison Aurore"),
        _treatment("welcome", "email", "en",
                   subject="Welcome to Maison Aurore{% if first_name %}, "
                           "{{ first_name|title }}{% endif %}!",
                   body=f"{_HELLO_EN}\n\nThank you for your first purchase. 10% off your "
                        "second order with the code BIENVENUE10, in store or on "
                        "maison-aurore.fr (30 days).\n\nThe Maison Aurore team"),
        _treatment("welcome", "sms", "fr",
                   text="Maison Aurore : bienvenue{% if first_name %} "
                        "{{ first_name|title }}{% endif %} ! -10 % sur votre 2e commande "
                        f"avec BIENVENUE10. {_STOP_FR}"),
        _treatment("welcome", "sms", "en",
                   text="Maison Aurore: welcome{% if first_name %} "
                        "{{ first_name|title }}{% endif %}! 10% off your 2nd order with "
                        f"BIENVENUE10. {_STOP_EN}"),
    ),
    _action(
        "winback_top", """
issue = "retention"
group = "winback"
kind = "offer"
channels = ["email", "sms", "call_centre"]
# the top value tier, at risk of leaving
eligibility = "value_tier == 'top' and defection_risk >= 0.3"
value = 40
cost = 4
prior_propensity = 0.15
""",
        _treatment("winback_top", "email", "fr",
                   subject="{% if first_name %}{{ first_name|title }}, vous {% else %}Vous "
                           "{% endif %}nous manquez : -20 % rien que pour vous",
                   body=f"{_HELLO_FR}\n\nCela fait un moment que nous ne vous avons pas vu. "
                        "Pour vous remercier de votre fidélité, profitez de -20 % sur votre "
                        "prochaine commande avec le code RETOUR20, valable 15 jours en "
                        "boutique et sur maison-aurore.fr.\n\nÀ très bientôt,\nL'équipe "
                        "Maison Aurore"),
        _treatment("winback_top", "email", "en",
                   subject="{% if first_name %}{{ first_name|title }}, we{% else %}We"
                           "{% endif %} miss you: 20% off just for you",
                   body=f"{_HELLO_EN}\n\nIt has been a while. To thank you for your loyalty, "
                        "enjoy 20% off your next order with the code RETOUR20, valid for 15 "
                        "days in store and on maison-aurore.fr.\n\nSee you soon,\nThe Maison "
                        "Aurore team"),
        _treatment("winback_top", "sms", "fr",
                   text="Maison Aurore : vous nous manquez{% if first_name %} "
                        "{{ first_name|title }}{% endif %} ! -20 % avec RETOUR20 pendant 15 "
                        f"jours. {_STOP_FR}"),
        _treatment("winback_top", "sms", "en",
                   text="Maison Aurore: we miss you{% if first_name %} "
                        "{{ first_name|title }}{% endif %}! 20% off with RETOUR20 for 15 "
                        f"days. {_STOP_EN}"),
        _treatment("winback_top", "call_centre", "fr",
                   script="Client précieux à risque de départ : remerciez-le de sa fidélité "
                          "et offrez -20 % (code RETOUR20, 15 jours)."),
        _treatment("winback_top", "call_centre", "en",
                   script="Valuable customer at risk of leaving: thank them for their "
                          "loyalty and offer 20% off (code RETOUR20, 15 days)."),
    ),
    _action(
        "cross_sell", """
issue = "growth"
group = "cross_sell"
kind = "offer"
channels = ["email", "web"]
# a repeat buyer whose needs segment is known; the treatment follows the segment
eligibility = "frequency >= 1 and needs_segment not in [None, 'unsegmented']"
value = 20
prior_propensity = 0.05
""",
        _treatment("cross_sell", "email", "fr",
                   subject="{% if first_name %}{{ first_name|title }}, une{% else %}Une"
                           "{% endif %} sélection pensée pour vous",
                   body=f"{_HELLO_FR}\n\nVous pourriez aimer {_PICK_FR} : -15 % avec le code "
                        "DECOUVERTE15 jusqu'à la fin du mois.\n\nL'équipe Maison Aurore"),
        _treatment("cross_sell", "email", "en",
                   subject="{% if first_name %}{{ first_name|title }}, a{% else %}A"
                           "{% endif %} selection made for you",
                   body=f"{_HELLO_EN}\n\nYou might like {_PICK_EN}: 15% off with the code "
                        "DECOUVERTE15 until the end of the month.\n\nThe Maison Aurore team"),
        _treatment("cross_sell", "web", "fr",
                   banner=f"Pour vous : {_PICK_FR}, -15 % avec DECOUVERTE15"),
        _treatment("cross_sell", "web", "en",
                   banner=f"For you: {_PICK_EN}, 15% off with DECOUVERTE15"),
    ),
    _action(
        "service_gesture", """
issue = "service"
group = "complaints"
kind = "service"
purpose = "service"
channels = ["email", "call_centre", "store", "web"]
# asked for by the channel that takes a complaint: context {"intent": "complaint"}
eligibility = "context_intent == 'complaint'"
value = 50
cost = 10
prior_propensity = 0.5
""",
        _treatment("service_gesture", "email", "fr",
                   subject="Nous sommes désolés{% if first_name %}, "
                           "{{ first_name|title }}{% endif %}",
                   body=f"{_HELLO_FR}\n\nNous regrettons sincèrement ce qui s'est passé. "
                        "Un bon de 15 € vous attend (code EXCUSES15, 60 jours), et notre "
                        "service client reste à votre écoute au 01 23 45 67 89.\n\nL'équipe "
                        "Maison Aurore"),
        _treatment("service_gesture", "email", "en",
                   subject="We are sorry{% if first_name %}, {{ first_name|title }}{% endif %}",
                   body=f"{_HELLO_EN}\n\nWe sincerely regret what happened. A 15 EUR voucher "
                        "is waiting for you (code EXCUSES15, 60 days), and our customer "
                        "service is there for you on +33 1 23 45 67 89.\n\nThe Maison Aurore "
                        "team"),
        _treatment("service_gesture", "call_centre", "fr",
                   script="Excusez-vous, résolvez le problème et offrez un bon de 15 € "
                          "(EXCUSES15)."),
        _treatment("service_gesture", "call_centre", "en",
                   script="Apologise, solve the problem and offer a 15 EUR voucher "
                          "(EXCUSES15)."),
        _treatment("service_gesture", "store", "fr",
                   script="Geste commercial : bon de 15 € (EXCUSES15) après une réclamation."),
        _treatment("service_gesture", "store", "en",
                   script="Goodwill gesture: a 15 EUR voucher (EXCUSES15) after a complaint."),
        _treatment("service_gesture", "web", "fr",
                   banner="Désolés pour la gêne : 15 € offerts avec EXCUSES15"),
        _treatment("service_gesture", "web", "en",
                   banner="Sorry for the trouble: 15 EUR off with EXCUSES15"),
    ),
    _action(
        "nps_survey", """
issue = "service"
group = "feedback"
kind = "message"
purpose = "service"
channels = ["email", "sms"]
eligibility = "frequency >= 1"
value = 2
prior_propensity = 0.2
""",
        _treatment("nps_survey", "email", "fr",
                   subject="Votre avis compte : 1 question, 30 secondes",
                   body=f"{_HELLO_FR}\n\nRecommanderiez-vous Maison Aurore à un proche ? "
                        "Répondez de 0 à 10 sur maison-aurore.fr/avis.\n\nMerci !"),
        _treatment("nps_survey", "email", "en",
                   subject="Your opinion matters: 1 question, 30 seconds",
                   body=f"{_HELLO_EN}\n\nWould you recommend Maison Aurore to a friend? "
                        "Answer from 0 to 10 on maison-aurore.fr/avis.\n\nThank you!"),
        _treatment("nps_survey", "sms", "fr",
                   text="Maison Aurore : recommanderiez-vous notre enseigne ? Répondez de 0 "
                        "à 10 sur maison-aurore.fr/avis. Merci !"),
        _treatment("nps_survey", "sms", "en",
                   text="Maison Aurore: would you recommend us? Answer from 0 to 10 on "
                        "maison-aurore.fr/avis. Thank you!"),
    ),
    _action(
        "loyalty_reward", """
issue = "retention"
group = "loyalty"
kind = "offer"
channels = ["email", "sms", "store", "web"]
# valuable customers who are not leaving: thank them
eligibility = "value_tier in ['top', 'growable'] and defection_risk < 0.3"
value = 25
cost = 5
prior_propensity = 0.1
""",
        _treatment("loyalty_reward", "email", "fr",
                   subject="Merci{% if first_name %} {{ first_name|title }}{% endif %} : "
                           "un cadeau pour votre fidélité",
                   body=f"{_HELLO_FR}\n\nVous faites partie de nos clients les plus fidèles. "
                        "Un cadeau vous attend en boutique ou avec le code MERCI (sur "
                        "maison-aurore.fr).\n\nL'équipe Maison Aurore"),
        _treatment("loyalty_reward", "email", "en",
                   subject="Thank you{% if first_name %} {{ first_name|title }}{% endif %}: "
                           "a gift for your loyalty",
                   body=f"{_HELLO_EN}\n\nYou are one of our most loyal customers. A gift is "
                        "waiting for you in store, or with the code MERCI on "
                        "maison-aurore.fr.\n\nThe Maison Aurore team"),
        _treatment("loyalty_reward", "sms", "fr",
                   text="Maison Aurore : merci pour votre fidélité ! Un cadeau vous attend "
                        f"en boutique (code MERCI). {_STOP_FR}"),
        _treatment("loyalty_reward", "sms", "en",
                   text="Maison Aurore: thank you for your loyalty! A gift is waiting for "
                        f"you in store (code MERCI). {_STOP_EN}"),
        _treatment("loyalty_reward", "store", "fr",
                   script="Client fidèle : remerciez-le et remettez-lui son cadeau (MERCI)."),
        _treatment("loyalty_reward", "store", "en",
                   script="Loyal customer: thank them and hand over their gift (MERCI)."),
        _treatment("loyalty_reward", "web", "fr",
                   banner="Merci pour votre fidélité : votre cadeau avec le code MERCI"),
        _treatment("loyalty_reward", "web", "en",
                   banner="Thank you for your loyalty: your gift with the code MERCI"),
    ),
    _action(
        "ideas_invitation", """
issue = "relationship"
group = "community"
kind = "message"
channels = ["email", "web"]
# customers who came back at least twice: invited to propose ideas
eligibility = "frequency >= 2"
value = 5
prior_propensity = 0.04
""",
        _treatment("ideas_invitation", "email", "fr",
                   subject="{% if first_name %}{{ first_name|title }}, et{% else %}Et"
                           "{% endif %} si vous imaginiez Maison Aurore avec nous ?",
                   body=f"{_HELLO_FR}\n\nUn produit qui vous manque, un service à améliorer, "
                        "une idée pour nos boutiques ? Proposez-la sur "
                        "maison-aurore.fr/idees : chaque mois, nous réalisons l'idée la plus "
                        "soutenue.\n\nL'équipe Maison Aurore"),
        _treatment("ideas_invitation", "email", "en",
                   subject="{% if first_name %}{{ first_name|title }}, how{% else %}How"
                           "{% endif %} would you make Maison Aurore better?",
                   body=f"{_HELLO_EN}\n\nA product you miss, a service to improve, an idea "
                        "for our stores? Share it on maison-aurore.fr/idees: every month we "
                        "bring the most supported idea to life.\n\nThe Maison Aurore team"),
        _treatment("ideas_invitation", "web", "fr",
                   banner="Une idée pour Maison Aurore ? Proposez-la sur /idees"),
        _treatment("ideas_invitation", "web", "en",
                   banner="An idea for Maison Aurore? Share it on /idees"),
    ),
])

CAMPAIGNS_TOML = f"""
[campaigns.{WINBACK}]
channel = "email"
tiers = ["top"]
audience = "defection_risk >= 0.3"
actions = ["winback_top"]
control_share = 0.2

[campaigns.welcome]
channel = "email"
audience = "0 < T <= 8 and frequency == 0"
actions = ["welcome"]
control_share = 0.1
"""

#: the catalog and campaigns part of the demo's ``onetoone.toml``
DECISIONING_TOML = CATALOG_TOML + "\n" + CAMPAIGNS_TOML
