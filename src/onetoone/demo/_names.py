"""Small embedded vocabularies for the demo company: names, places, products and free texts.

Everything is embedded in code so that the demo works offline and is reproducible; the lists are
short on purpose (a few hundred entries) and ordered by frequency where frequency matters
(the most common French surnames come first, so that distinct people often share a name).
"""

from __future__ import annotations

COMPANY = "Maison Aurore"
COMPANY_HANDLE = "@maisonaurore"

FIRST_NAMES_F: tuple[str, ...] = (
    "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Sophie", "Christine", "Sandrine",
    "Valérie", "Véronique", "Céline", "Stéphanie", "Julie", "Camille", "Laura", "Léa", "Manon",
    "Chloé", "Emma", "Sarah", "Aurélie", "Émilie", "Caroline", "Anne", "Hélène", "Françoise",
    "Monique", "Martine", "Brigitte", "Nicole", "Élodie", "Pauline", "Mathilde", "Inès",
    "Juliette", "Clara", "Anaïs", "Audrey", "Virginie", "Laetitia", "Agnès", "Béatrice",
    "Margaux", "Océane", "Louise", "Alice", "Zoé", "Jade", "Lucie", "Charlotte", "Élisabeth",
    "Dominique", "Patricia", "Corinne", "Delphine", "Karine", "Gaëlle", "Noémie", "Amandine",
    "Jeanne",
)
FIRST_NAMES_M: tuple[str, ...] = (
    "Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "Christophe", "Patrick",
    "Stéphane", "Frédéric", "Laurent", "Julien", "Sébastien", "David", "Thomas", "Alexandre",
    "Maxime", "Antoine", "Kévin", "Romain", "Guillaume", "Olivier", "Éric", "François",
    "Jérôme", "Benoît", "Mathieu", "Lucas", "Hugo", "Louis", "Gabriel", "Arthur", "Léo",
    "Raphaël", "Théo", "Nathan", "Quentin", "Damien", "Vincent", "Thierry", "Bernard",
    "Daniel", "Jacques", "Didier", "Pascal", "Yves", "Gérard", "Mohamed", "Karim", "Yanis",
    "Jean-Pierre", "Jean-Luc", "Bruno", "Cédric", "Fabrice", "Franck", "Hervé", "Joël",
    "Mickaël", "Jonathan",
)
FIRST_NAMES_EN_F: tuple[str, ...] = (
    "Emily", "Jessica", "Olivia", "Hannah", "Sophie", "Charlotte", "Amelia", "Grace", "Lucy",
    "Rebecca",
)
FIRST_NAMES_EN_M: tuple[str, ...] = (
    "James", "John", "Michael", "William", "Oliver", "Jack", "Harry", "George", "Daniel",
    "Thomas",
)

NICKNAMES: dict[str, str] = {
    "Alexandre": "Alex", "Catherine": "Cathy", "Christophe": "Chris", "Nicolas": "Nico",
    "Maxime": "Max", "Mathieu": "Matt", "Stéphanie": "Steph", "Frédéric": "Fred",
    "Sébastien": "Seb", "Isabelle": "Isa", "Élisabeth": "Babeth", "Véronique": "Véro",
    "Valérie": "Val", "Dominique": "Dom", "Philippe": "Phil", "Patrick": "Pat",
    "Raphaël": "Raph", "Caroline": "Caro", "Jean-Pierre": "JP", "Sandrine": "Sandy",
    "Christine": "Kiki", "Anaïs": "Ana", "Guillaume": "Guigui", "Julien": "Juju",
    "Michael": "Mike", "William": "Bill", "James": "Jim", "Daniel": "Dan", "Thomas": "Tom",
    "Jessica": "Jess", "Rebecca": "Becky", "Olivia": "Liv", "Emily": "Em", "Mickaël": "Mika",
    "Jonathan": "Jo", "Amandine": "Mandy", "Patricia": "Patou", "Delphine": "Delph",
}

# Ordered by frequency in France (Martin first): sampled with Zipf-like weights.
LAST_NAMES_FR: tuple[str, ...] = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau",
    "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel",
    "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
    "Muller", "Lefebvre", "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer", "Garnier",
    "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément",
    "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand",
    "Duval", "Denis", "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier",
    "Brun", "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier",
    "Arnaud", "Martinez", "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin",
    "Vidal", "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas",
    "Lacroix", "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc",
    "Payet", "Rolland", "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy",
    "Guillot", "Hubert", "Berger", "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis",
    "Deschamps", "Huet", "Vasseur", "Perez", "Boucher", "Fleury", "Royer", "Klein", "Jacquet",
    "Adam", "Paris", "Poirier", "Marty", "Aubry", "Guyot", "Carré", "Charles", "Renault",
    "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider",
    "Fernandez", "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost", "Millet",
    "Perrot", "Daniel", "Le Roux", "Cousin", "Germain", "Breton", "Besson", "Langlois",
    "Rémy", "Le Goff", "Pelletier", "Lévêque", "Perrier", "Leblanc", "Barré", "Lebrun",
    "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier", "Michaud",
    "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain", "Tessier",
    "Chevallier", "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître", "Bénard",
    "Maréchal", "Humbert", "Reynaud", "Antoine", "Hoarau", "Perret", "Barthélemy", "Cordier",
    "Pichon", "Lejeune", "Gilbert", "Lamy", "Delaunay", "Pasquier", "Carlier", "Laporte",
    "N'Diaye", "Benali", "Nguyen", "Haddad", "Diallo", "Ferreira", "Dos Santos", "Kowalski",
)
LAST_NAMES_EN: tuple[str, ...] = (
    "Smith", "Jones", "Williams", "Brown", "Taylor", "Davies", "Wilson", "Evans", "Johnson",
    "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes", "O'Brien",
)

# (city, postcode, weight ~ population in thousands). Paris is split into arrondissements.
CITIES: tuple[tuple[str, str, int], ...] = (
    ("Paris", "75011", 140), ("Paris", "75015", 230), ("Paris", "75017", 160),
    ("Paris", "75018", 190), ("Paris", "75020", 190), ("Paris", "75012", 140),
    ("Paris", "75005", 60), ("Marseille", "13001", 120), ("Marseille", "13008", 80),
    ("Lyon", "69003", 100), ("Lyon", "69007", 85), ("Toulouse", "31000", 500),
    ("Nice", "06000", 340), ("Nantes", "44000", 320), ("Montpellier", "34000", 300),
    ("Strasbourg", "67000", 290), ("Bordeaux", "33000", 260), ("Lille", "59000", 235),
    ("Rennes", "35000", 220), ("Reims", "51100", 180), ("Toulon", "83000", 180),
    ("Saint-Étienne", "42000", 175), ("Le Havre", "76600", 170), ("Grenoble", "38000", 160),
    ("Dijon", "21000", 160), ("Angers", "49000", 155), ("Nîmes", "30000", 150),
    ("Villeurbanne", "69100", 150), ("Clermont-Ferrand", "63000", 147),
    ("Le Mans", "72000", 145), ("Aix-en-Provence", "13100", 145), ("Brest", "29200", 140),
    ("Tours", "37000", 137), ("Amiens", "80000", 134), ("Limoges", "87000", 131),
    ("Annecy", "74000", 130), ("Perpignan", "66000", 120), ("Boulogne-Billancourt", "92100", 120),
    ("Metz", "57000", 118), ("Besançon", "25000", 117), ("Orléans", "45000", 116),
    ("Saint-Denis", "93200", 113), ("Rouen", "76000", 112), ("Mulhouse", "68100", 108),
    ("Caen", "14000", 106), ("Nancy", "54000", 104), ("Argenteuil", "95100", 110),
    ("Montreuil", "93100", 110), ("Versailles", "78000", 85), ("Pau", "64000", 76),
    ("La Rochelle", "17000", 77), ("Poitiers", "86000", 89), ("Avignon", "84000", 91),
    ("Créteil", "94000", 92), ("Vannes", "56000", 54), ("Chambéry", "73000", 60),
    ("Bayonne", "64100", 52), ("Quimper", "29000", 63), ("Troyes", "10000", 62),
    ("Niort", "79000", 59), ("Valence", "26000", 64), ("Saint-Malo", "35400", 47),
    ("Colmar", "68000", 67), ("Arcachon", "33120", 11), ("Sèvres", "92310", 23),
    ("L'Haÿ-les-Roses", "94240", 31), ("Évry-Courcouronnes", "91000", 68),
)

STORE_CITIES: tuple[str, ...] = (
    "Paris", "Paris", "Paris", "Paris", "Marseille", "Marseille", "Lyon", "Lyon", "Toulouse",
    "Nice", "Nantes", "Montpellier", "Strasbourg", "Bordeaux", "Lille", "Rennes", "Reims",
    "Toulon", "Saint-Étienne", "Le Havre", "Grenoble", "Dijon", "Angers", "Nîmes",
    "Clermont-Ferrand", "Le Mans", "Aix-en-Provence", "Brest", "Tours", "Amiens", "Limoges",
    "Annecy", "Perpignan", "Metz", "Besançon", "Orléans", "Rouen", "Caen", "Nancy",
    "Versailles", "La Rochelle", "Pau",
)

STREET_TYPES: tuple[str, ...] = (
    "rue", "rue", "rue", "rue", "avenue", "avenue", "boulevard", "allée", "place", "impasse",
    "chemin", "quai",
)
STREET_NAMES: tuple[str, ...] = (
    "de la République", "Victor Hugo", "Jean Jaurès", "des Lilas", "de la Paix", "Pasteur",
    "du Général de Gaulle", "Gambetta", "de la Gare", "des Écoles", "du Moulin", "Voltaire",
    "de l'Église", "Émile Zola", "Jules Ferry", "des Acacias", "du Château", "de Verdun",
    "Carnot", "de Paris", "Anatole France", "Saint-Michel", "des Tilleuls", "du Marché",
    "Molière", "de la Liberté", "Foch", "des Roses", "Aristide Briand", "Sadi Carnot",
    "de Bretagne", "du Port", "des Peupliers", "Louis Pasteur", "de Lattre de Tassigny",
    "Saint-Honoré", "de la Fontaine", "des Cerisiers", "Paul Bert", "Édouard Herriot",
    "Condorcet", "du 8 Mai 1945", "Lamartine", "Montaigne", "Jeanne d'Arc", "des Vignes",
    "de Strasbourg", "du Faubourg Saint-Antoine", "Mozart", "Colbert",
)

MAIL_DOMAINS: tuple[tuple[str, int], ...] = (
    ("gmail.com", 38), ("orange.fr", 14), ("hotmail.fr", 9), ("yahoo.fr", 7), ("free.fr", 7),
    ("outlook.fr", 5), ("sfr.fr", 4), ("laposte.net", 4), ("wanadoo.fr", 4), ("icloud.com", 4),
    ("hotmail.com", 3), ("live.fr", 2), ("neuf.fr", 1),
)
# A plausible typo of each domain (same order as MAIL_DOMAINS).
MAIL_DOMAIN_TYPOS: tuple[str, ...] = (
    "gmial.com", "orange.com", "hotmial.fr", "yahoo.com", "fre.fr", "outlok.fr", "sfr.com",
    "lapost.net", "wanado.fr", "iclould.com", "hotmail.co", "live.com", "neuf.com",
)
GENERIC_LOCALS: tuple[str, ...] = ("contact", "info", "accueil", "famille", "bonjour")
BUSINESS_WORDS: tuple[str, ...] = (
    "boulangerie", "cabinet", "atelier", "garage", "pharmacie", "agence", "salon", "epicerie",
    "fleuriste", "studio",
)

SEGMENTS: tuple[str, ...] = (
    "web_fashionistas", "home_nesters", "premium_loyals", "bargain_hunters", "occasional_gifters",
)

CATEGORIES: tuple[str, ...] = (
    "linge de maison", "décoration", "cuisine", "mobilier", "luminaire",
    "mode femme", "mode homme", "enfant", "chaussures", "accessoires",
)
# Price range (min, max) in euros per category, same order as CATEGORIES.
CATEGORY_PRICES: tuple[tuple[float, float], ...] = (
    (9.0, 180.0), (5.0, 150.0), (4.0, 220.0), (60.0, 1200.0), (15.0, 400.0),
    (9.0, 260.0), (12.0, 240.0), (6.0, 90.0), (25.0, 220.0), (5.0, 140.0),
)
CATEGORY_ITEMS: tuple[tuple[str, ...], ...] = (
    ("Housse de couette", "Drap housse", "Plaid", "Coussin", "Serviette de bain", "Nappe"),
    ("Vase", "Bougie parfumée", "Cadre photo", "Miroir", "Tapis", "Panier tressé"),
    ("Cocotte", "Set de couteaux", "Assiette plate", "Verre à vin", "Théière", "Poêle"),
    ("Table basse", "Chaise", "Étagère", "Fauteuil", "Commode", "Console"),
    ("Lampe à poser", "Suspension", "Lampadaire", "Guirlande lumineuse", "Applique"),
    ("Robe", "Chemisier", "Pull", "Jean", "Manteau", "Jupe"),
    ("Chemise", "Pull col rond", "Pantalon chino", "Veste", "T-shirt", "Polo"),
    ("Body bébé", "Pyjama enfant", "Doudou", "Sweat enfant", "Robe fille"),
    ("Baskets", "Bottines", "Sandales", "Mocassins", "Escarpins"),
    ("Sac à main", "Écharpe", "Ceinture", "Bonnet", "Portefeuille", "Lunettes de soleil"),
)
ADJECTIVES: tuple[str, ...] = (
    "lin lavé", "velours", "coton bio", "céramique", "rotin", "laine", "grès", "chêne",
    "bambou", "satin", "cuir", "recyclé",
)
COLOURS: tuple[str, ...] = (
    "blanc", "écru", "terracotta", "bleu nuit", "vert sauge", "noir", "rose poudré", "ocre",
    "gris perle", "moutarde",
)
BRANDS: tuple[str, ...] = (
    "Maison Aurore", "Aurore Essentiel", "Atelier Sud", "Nordik Home", "Coton & Cie",
    "Belle Époque", "Urban Loft", "Petit Nuage",
)

# Customer-service texts by category (complaint, question, return, delivery), French then English.
# "\n" inside a text makes a multi-line field in the export.
SERVICE_TEXTS_FR: tuple[tuple[str, ...], ...] = (
    (
        "Commande reçue abîmée, le vase est cassé. Très déçue.",
        "Bonjour,\nJe suis très mécontent : ma commande a trois semaines de retard.\n"
        "Je veux être remboursé.",
        "Vendeuse désagréable au magasin, je ne reviendrai pas.",
        "Produit de mauvaise qualité, la couleur a déteint au premier lavage !",
        "Cela fait 3 fois que j'appelle sans réponse. Inadmissible.",
        "On m'a facturé deux fois la même commande.\nMerci de corriger rapidement.",
    ),
    (
        "Bonjour, avez-vous ce modèle en taille 38 ?",
        "Quels sont les horaires du magasin le dimanche ?",
        "Comment utiliser mon bon de réduction sur le site ?",
        "Bonjour,\nPouvez-vous me dire si le plaid existe en vert sauge ?\nMerci d'avance.",
        "Mes points de fidélité n'apparaissent pas sur mon compte.",
    ),
    (
        "Je souhaite retourner un article, la taille ne convient pas.",
        "Demande de retour : la couleur ne correspond pas à la photo.",
        "Bonjour,\nComment obtenir une étiquette de retour ?\nCordialement",
    ),
    (
        "Où en est ma livraison ? Le suivi ne bouge plus.",
        "Le colis est indiqué livré mais je n'ai rien reçu.",
        "Peut-on changer l'adresse de livraison de ma commande ?",
    ),
)
SERVICE_TEXTS_EN: tuple[tuple[str, ...], ...] = (
    (
        "My order arrived damaged. Very disappointed.",
        "Hello,\nMy parcel is three weeks late and nobody answers.\nI want a refund.",
        "Rude staff in the store, I will not come back.",
    ),
    ("Do you ship to the UK?", "Is this lamp available in black?"),
    ("I would like to return a jumper that is too small.",),
    ("Where is my parcel? Tracking has not moved for days.",),
)

SOCIAL_POS_FR: tuple[str, ...] = (
    "Trop contente de mon nouveau plaid @maisonaurore, tout doux !",
    "Super accueil au magasin aujourd'hui, merci @maisonaurore",
    "Livraison rapide et emballage soigné, je recommande @maisonaurore",
    "Coup de cœur pour la nouvelle collection lin lavé #maisonaurore",
    "Ma déco salon est enfin terminée grâce à @maisonaurore ✨",
    "Les soldes @maisonaurore valent vraiment le détour",
)
SOCIAL_NEG_FR: tuple[str, ...] = (
    "Commande jamais reçue, service client injoignable @maisonaurore. Honteux.",
    "Qualité en chute libre chez @maisonaurore, c'est fini pour moi",
    "Trois semaines d'attente pour un colis abîmé. Merci @maisonaurore 👎",
    "Vendeur désagréable au magasin, plus jamais @maisonaurore",
    "Remboursement toujours pas reçu @maisonaurore, je vais voir ailleurs",
)
SOCIAL_POS_EN: tuple[str, ...] = (
    "Love my new cushions from @maisonaurore, so cosy!",
    "Great service in the Paris store today, thanks @maisonaurore",
    "Fast delivery and lovely packaging @maisonaurore",
)
SOCIAL_NEG_EN: tuple[str, ...] = (
    "Still waiting for my refund @maisonaurore, awful customer service",
    "Parcel arrived broken and no answer from @maisonaurore. Never again.",
    "Quality has gone downhill at @maisonaurore, done with them",
)

NPS_COMMENTS_POS_FR: tuple[str, ...] = (
    "Très satisfaite, produits de qualité.", "Conseil au top en magasin.",
    "Livraison rapide, rien à redire.", "J'adore la collection maison.",
)
NPS_COMMENTS_MID_FR: tuple[str, ...] = (
    "Correct mais un peu cher.", "Bien, mais le site est lent.",
    "Produits jolis, délais un peu longs.",
)
NPS_COMMENTS_NEG_FR: tuple[str, ...] = (
    "Déçu par la qualité et le service client.", "Livraison en retard, aucun suivi.",
    "Article abîmé, retour compliqué.\nJe ne recommande pas.",
    "Prix en hausse, qualité en baisse.",
)
NPS_COMMENTS_POS_EN: tuple[str, ...] = ("Lovely products, great service.",)
NPS_COMMENTS_MID_EN: tuple[str, ...] = ("Fine, a bit pricey.",)
NPS_COMMENTS_NEG_EN: tuple[str, ...] = ("Late delivery and poor support.",)

STRANGER_HANDLES: tuple[str, ...] = (
    "decoaddict", "lily_interieur", "homesweethome_fr", "modeparis", "jb_photo", "zen_attitude",
    "la_brocanteuse", "petitsprix", "slowliving_lyon", "maman_de_3", "urbanjungle", "le_bon_plan",
)
