"""Deterministic generator of realistic news articles in five languages, with near-duplicates."""

# ruff: noqa: RUF001  (Cyrillic text is the point here, not a look-alike of Latin letters)

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import accumulate
from typing import Final, Literal

LANGUAGES: Final = ("en", "de", "fr", "es", "ru")
TOPICS: Final = ("alliance", "floods", "rates")

Variant = Literal["original", "boilerplate", "edited"]

# Sentence pools are parallel: index i means the same thing in every language, so one article
# plan renders as a true translation. Slots: {city} (a locative form in Russian, used after
# "в"), {weekday}, {person}, {n} (a count), {pct} (a percentage with the local decimal mark).
_TITLES: Final[dict[str, dict[str, list[str]]]] = {
    "alliance": {
        "en": [
            "Alliance ministers meet in {city} to discuss enlargement",
            "Enlargement talks enter final stage, says {person}",
            "Parliament delays vote on alliance membership",
        ],
        "de": [
            "Bündnisminister beraten in {city} über die Erweiterung",
            "Erweiterungsgespräche in der Schlussphase, sagt {person}",
            "Parlament verschiebt Abstimmung über Bündnisbeitritt",
        ],
        "fr": [
            "Les ministres de l'alliance réunis à {city} sur l'élargissement",
            "Les négociations d'élargissement entrent dans leur phase finale, selon {person}",
            "Le parlement reporte le vote sur l'adhésion à l'alliance",
        ],
        "es": [
            "Los ministros de la alianza se reúnen en {city} para debatir la ampliación",
            "Las negociaciones de ampliación entran en su fase final, según {person}",
            "El parlamento aplaza la votación sobre la adhesión a la alianza",
        ],
        "ru": [
            "Министры альянса обсуждают расширение в {city}",
            "Переговоры о расширении вышли на финальный этап, заявляет {person}",
            "Парламент отложил голосование о вступлении в альянс",
        ],
    },
    "floods": {
        "en": [
            "Floods force thousands from their homes near {city}",
            "Water levels keep rising as rain continues, says {person}",
            "Emergency aid promised after storms hit {city}",
        ],
        "de": [
            "Hochwasser bei {city} vertreibt Tausende aus ihren Häusern",
            "Pegel steigen weiter, der Regen hält an, sagt {person}",
            "Soforthilfe zugesagt, nachdem Unwetter {city} getroffen haben",
        ],
        "fr": [
            "Près de {city}, des milliers d'habitants chassés par les inondations",
            "Le niveau de l'eau continue de monter sous la pluie, selon {person}",
            "Une aide d'urgence promise après les tempêtes à {city}",
        ],
        "es": [
            "Las inundaciones obligan a miles a dejar sus casas cerca de {city}",
            "El nivel del agua sigue subiendo mientras continúa la lluvia, según {person}",
            "Prometen ayudas urgentes tras las tormentas en {city}",
        ],
        "ru": [
            "Наводнение в {city} вынудило тысячи людей покинуть дома",
            "Уровень воды продолжает расти, дожди не прекращаются, заявляет {person}",
            "После штормов в {city} пообещали экстренную помощь",
        ],
    },
    "rates": {
        "en": [
            "Central bank keeps interest rates unchanged",
            "Inflation slows to {pct} percent, says {person}",
            "Markets in {city} react calmly to rate decision",
        ],
        "de": [
            "Notenbank lässt die Leitzinsen unverändert",
            "Inflation sinkt auf {pct} Prozent, sagt {person}",
            "Märkte in {city} reagieren gelassen auf Zinsentscheid",
        ],
        "fr": [
            "La banque centrale maintient ses taux directeurs",
            "L'inflation ralentit à {pct} %, selon {person}",
            "À {city}, les marchés accueillent calmement la décision sur les taux",
        ],
        "es": [
            "El banco central mantiene los tipos de interés",
            "La inflación se modera hasta el {pct} %, según {person}",
            "Los mercados de {city} reaccionan con calma a la decisión sobre los tipos",
        ],
        "ru": [
            "Центробанк сохранил ключевую ставку без изменений",
            "Инфляция замедлилась до {pct}%, заявляет {person}",
            "Рынки в {city} спокойно отреагировали на решение по ставке",
        ],
    },
}

_LEADS: Final[dict[str, dict[str, list[str]]]] = {
    "alliance": {
        "en": [
            "Foreign ministers of the alliance met in {city} {weekday} to discuss how quickly the "
            "two candidate countries could join.",
            "The alliance's enlargement moved a step closer {weekday} after officials in {city} "
            "reported progress in the ratification talks.",
            "Negotiators gathered in {city} {weekday} for what several delegations described as "
            "the decisive round of talks on enlargement.",
        ],
        "de": [
            "Die Außenminister des Bündnisses haben {weekday} in {city} darüber beraten, wie "
            "schnell die beiden Kandidatenländer beitreten können.",
            "Die Erweiterung des Bündnisses ist {weekday} einen Schritt näher gerückt, nachdem "
            "Vertreter in {city} Fortschritte bei den Ratifizierungsgesprächen meldeten.",
            "Die Unterhändler kamen {weekday} in {city} zu einer Runde zusammen, die mehrere "
            "Delegationen als entscheidend für die Erweiterung bezeichneten.",
        ],
        "fr": [
            "Les ministres des affaires étrangères de l'alliance se sont réunis {weekday} à "
            "{city} pour discuter du calendrier d'adhésion des deux pays candidats.",
            "L'élargissement de l'alliance a franchi une étape {weekday}, les responsables réunis "
            "à {city} ayant fait état de progrès dans les discussions sur la ratification.",
            "Les négociateurs se sont retrouvés {weekday} à {city} pour une session que plusieurs "
            "délégations ont qualifiée de décisive pour l'élargissement.",
        ],
        "es": [
            "Los ministros de Exteriores de la alianza se reunieron {weekday} en {city} para "
            "debatir con qué rapidez podrán incorporarse los dos países candidatos.",
            "La ampliación de la alianza dio un paso más {weekday} después de que los "
            "responsables reunidos en {city} informaran de avances en la ratificación.",
            "Los negociadores se reunieron {weekday} en {city} en una ronda que varias "
            "delegaciones calificaron de decisiva para la ampliación.",
        ],
        "ru": [
            "Министры иностранных дел стран альянса {weekday} собрались в {city}, чтобы обсудить, "
            "как быстро две страны-кандидата смогут вступить в организацию.",
            "Расширение альянса {weekday} стало на шаг ближе после того, как официальные лица в "
            "{city} сообщили о прогрессе в переговорах о ратификации.",
            "Переговорщики {weekday} собрались в {city} на раунд, который несколько делегаций "
            "назвали решающим для расширения.",
        ],
    },
    "floods": {
        "en": [
            "Heavy rain that fell for three days around {city} has forced thousands of residents "
            "to leave their homes, emergency services said {weekday}.",
            "Rescue teams worked through the night near {city} as rivers burst their banks after "
            "days of heavy rain, officials said {weekday}.",
            "The regional government declared a state of emergency {weekday} after floods cut off "
            "several villages near {city}.",
        ],
        "de": [
            "Nach drei Tagen Dauerregen rund um {city} mussten Tausende Bewohner ihre Häuser "
            "verlassen, teilten die Rettungsdienste {weekday} mit.",
            "Rettungskräfte arbeiteten bei {city} die ganze Nacht hindurch, nachdem Flüsse nach "
            "tagelangem Regen über die Ufer getreten waren, hieß es {weekday}.",
            "Die Landesregierung hat {weekday} den Notstand ausgerufen, nachdem das Hochwasser "
            "mehrere Dörfer bei {city} von der Außenwelt abgeschnitten hatte.",
        ],
        "fr": [
            "Les pluies tombées pendant trois jours autour de {city} ont contraint des milliers "
            "d'habitants à quitter leur logement, ont indiqué les secours {weekday}.",
            "Les équipes de secours ont travaillé toute la nuit près de {city} après la crue des "
            "rivières due à plusieurs jours de pluie, ont annoncé les autorités {weekday}.",
            "Le gouvernement régional a déclaré l'état d'urgence {weekday} après que les "
            "inondations ont isolé plusieurs villages près de {city}.",
        ],
        "es": [
            "Las lluvias que cayeron durante tres días en torno a {city} han obligado a miles de "
            "vecinos a abandonar sus casas, informaron los servicios de emergencia {weekday}.",
            "Los equipos de rescate trabajaron toda la noche cerca de {city} después de que los "
            "ríos se desbordaran tras días de lluvia, según las autoridades {weekday}.",
            "El gobierno regional declaró {weekday} el estado de emergencia después de que las "
            "inundaciones dejaran aislados varios pueblos cerca de {city}.",
        ],
        "ru": [
            "Сильные дожди, которые три дня шли в {city} и окрестностях, вынудили тысячи жителей "
            "покинуть свои дома, сообщили спасатели {weekday}.",
            "Спасатели всю ночь работали в {city}, где после многодневных дождей реки вышли из "
            "берегов, сообщили власти {weekday}.",
            "Региональное правительство {weekday} объявило режим чрезвычайной ситуации в {city} "
            "и окрестностях после того, как наводнение отрезало от внешнего мира несколько сёл.",
        ],
    },
    "rates": {
        "en": [
            "The central bank left its main interest rate unchanged {weekday}, saying that "
            "inflation was slowing but remained too high.",
            "Policymakers kept borrowing costs on hold {weekday} as new figures showed consumer "
            "prices rising by {pct} percent.",
            "Investors in {city} had widely expected the decision announced {weekday} to keep "
            "interest rates at their current level.",
        ],
        "de": [
            "Die Notenbank hat {weekday} ihren Leitzins nicht verändert und erklärt, die "
            "Inflation gehe zwar zurück, sei aber weiterhin zu hoch.",
            "Die Währungshüter haben die Zinsen {weekday} konstant gehalten, während neue Zahlen "
            "einen Anstieg der Verbraucherpreise um {pct} Prozent zeigten.",
            "Anleger in {city} hatten fest damit gerechnet, dass die {weekday} verkündete "
            "Entscheidung die Zinsen auf dem bisherigen Niveau belässt.",
        ],
        "fr": [
            "La banque centrale a laissé son principal taux directeur inchangé {weekday}, "
            "estimant que l'inflation ralentissait mais restait trop élevée.",
            "Les responsables monétaires ont maintenu le coût du crédit {weekday}, alors que de "
            "nouveaux chiffres montraient une hausse des prix à la consommation de {pct} %.",
            "À {city}, les investisseurs s'attendaient largement à ce que la décision annoncée "
            "{weekday} maintienne les taux à leur niveau actuel.",
        ],
        "es": [
            "El banco central mantuvo sin cambios su principal tipo de interés {weekday} y "
            "afirmó que la inflación se estaba moderando, aunque seguía siendo demasiado alta.",
            "Los responsables de la política monetaria congelaron el precio del dinero {weekday} "
            "mientras nuevos datos mostraban una subida de los precios del {pct} %.",
            "Los inversores de {city} daban por hecho que la decisión anunciada {weekday} "
            "mantendría los tipos de interés en su nivel actual.",
        ],
        "ru": [
            "Центральный банк {weekday} сохранил ключевую ставку без изменений, заявив, что "
            "инфляция замедляется, но остаётся слишком высокой.",
            "Регулятор {weekday} оставил стоимость заимствований прежней, хотя новые данные "
            "показали рост потребительских цен на {pct}%.",
            "Инвесторы в {city} в целом ожидали, что объявленное {weekday} решение сохранит "
            "процентные ставки на нынешнем уровне.",
        ],
    },
}

_BODY: Final[dict[str, dict[str, list[str]]]] = {
    "alliance": {
        "en": [
            "Several delegations said that ratification in national parliaments was moving "
            "faster than expected.",
            "One government has still not scheduled a vote, citing concerns about arms exports.",
            "The secretary general said the enlargement would strengthen security in the north "
            "of the continent.",
            "Joint exercises planned for the autumn will include more than {n} troops from both "
            "candidate countries.",
            "Critics argue that the expansion increases the risk of confrontation along a long "
            "land border.",
            "The cost of modernising air defences is expected to fall mainly on smaller members.",
            "Officials in a neighbouring capital called the move a provocation and promised a "
            "response.",
            "Defence spending across the alliance rose by {pct} percent last year, according to "
            "new figures.",
            "Analysts say the real test will come when budgets for new bases and fuel depots "
            "have to be approved.",
            "Both candidates have already adapted their armed forces to the common standards of "
            "the alliance.",
            "Opposition parties demanded a public debate before any final decision is taken.",
            "Diplomats expect the accession protocols to be signed before the end of the year.",
            "Military planners are studying how to protect undersea cables and pipelines in the "
            "region.",
            "A recent survey showed that a clear majority of voters in both countries support "
            "membership.",
            "The talks were overshadowed by a dispute over the extradition of several activists.",
            "Naval patrols in the region have been stepped up since the spring.",
        ],
        "de": [
            "Mehrere Delegationen erklärten, die Ratifizierung in den nationalen Parlamenten "
            "komme schneller voran als erwartet.",
            "Eine Regierung hat noch immer keinen Termin für die Abstimmung festgelegt und "
            "verweist auf Bedenken wegen Rüstungsexporten.",
            "Der Generalsekretär sagte, die Erweiterung werde die Sicherheit im Norden des "
            "Kontinents stärken.",
            "An den für den Herbst geplanten gemeinsamen Übungen sollen mehr als {n} Soldaten aus "
            "beiden Kandidatenländern teilnehmen.",
            "Kritiker meinen, die Erweiterung erhöhe das Risiko einer Konfrontation entlang einer "
            "langen Landgrenze.",
            "Die Kosten für die Modernisierung der Luftverteidigung dürften vor allem die "
            "kleineren Mitglieder tragen.",
            "Vertreter einer benachbarten Hauptstadt nannten den Schritt eine Provokation und "
            "kündigten eine Antwort an.",
            "Die Verteidigungsausgaben im Bündnis sind nach neuen Zahlen im vergangenen Jahr um "
            "{pct} Prozent gestiegen.",
            "Fachleute sagen, die eigentliche Bewährungsprobe komme, wenn die Haushalte für neue "
            "Stützpunkte und Treibstofflager beschlossen werden müssen.",
            "Beide Kandidaten haben ihre Streitkräfte bereits an die gemeinsamen Standards des "
            "Bündnisses angepasst.",
            "Oppositionsparteien verlangten eine öffentliche Debatte, bevor eine endgültige "
            "Entscheidung fällt.",
            "Diplomaten rechnen damit, dass die Beitrittsprotokolle noch vor Jahresende "
            "unterzeichnet werden.",
            "Militärplaner prüfen, wie Unterseekabel und Pipelines in der Region geschützt werden "
            "können.",
            "Eine aktuelle Umfrage ergab, dass eine klare Mehrheit der Wähler in beiden Ländern "
            "den Beitritt unterstützt.",
            "Die Gespräche wurden von einem Streit über die Auslieferung mehrerer Aktivisten "
            "überschattet.",
            "Die Marinepatrouillen in der Region wurden seit dem Frühjahr verstärkt.",
        ],
        "fr": [
            "Plusieurs délégations ont indiqué que la ratification dans les parlements nationaux "
            "avançait plus vite que prévu.",
            "Un gouvernement n'a toujours pas fixé la date du vote, invoquant des inquiétudes sur "
            "les exportations d'armes.",
            "Le secrétaire général a déclaré que l'élargissement renforcerait la sécurité dans le "
            "nord du continent.",
            "Les exercices communs prévus à l'automne réuniront plus de {n} soldats des deux pays "
            "candidats.",
            "Les critiques estiment que l'élargissement accroît le risque de confrontation le "
            "long d'une longue frontière terrestre.",
            "Le coût de la modernisation de la défense aérienne devrait peser surtout sur les "
            "petits États membres.",
            "Les autorités d'une capitale voisine ont qualifié cette démarche de provocation et "
            "promis une riposte.",
            "Les dépenses de défense de l'alliance ont augmenté de {pct} % l'an dernier, selon de "
            "nouveaux chiffres.",
            "Selon les analystes, le véritable test viendra lorsqu'il faudra voter les budgets "
            "des nouvelles bases et des dépôts de carburant.",
            "Les deux candidats ont déjà adapté leurs forces armées aux normes communes de "
            "l'alliance.",
            "Les partis d'opposition ont réclamé un débat public avant toute décision définitive.",
            "Les diplomates s'attendent à ce que les protocoles d'adhésion soient signés avant la "
            "fin de l'année.",
            "Les planificateurs militaires étudient comment protéger les câbles sous-marins et "
            "les gazoducs de la région.",
            "Un sondage récent montre qu'une nette majorité des électeurs des deux pays soutient "
            "l'adhésion.",
            "Les discussions ont été assombries par un différend sur l'extradition de plusieurs "
            "militants.",
            "Les patrouilles navales dans la région ont été renforcées depuis le printemps.",
        ],
        "es": [
            "Varias delegaciones afirmaron que la ratificación en los parlamentos nacionales "
            "avanza más deprisa de lo previsto.",
            "Un gobierno todavía no ha fijado la fecha de la votación y alega dudas sobre las "
            "exportaciones de armas.",
            "El secretario general dijo que la ampliación reforzará la seguridad en el norte del "
            "continente.",
            "En las maniobras conjuntas previstas para el otoño participarán más de {n} soldados "
            "de ambos países candidatos.",
            "Los críticos sostienen que la ampliación aumenta el riesgo de enfrentamiento a lo "
            "largo de una extensa frontera terrestre.",
            "Se espera que el coste de modernizar la defensa aérea recaiga sobre todo en los "
            "miembros más pequeños.",
            "Las autoridades de una capital vecina calificaron el paso de provocación y "
            "prometieron una respuesta.",
            "El gasto en defensa de la alianza creció un {pct} % el año pasado, según nuevos "
            "datos.",
            "Los analistas creen que la verdadera prueba llegará cuando haya que aprobar los "
            "presupuestos para nuevas bases y depósitos de combustible.",
            "Ambos candidatos ya han adaptado sus fuerzas armadas a las normas comunes de la "
            "alianza.",
            "Los partidos de la oposición exigieron un debate público antes de que se tome "
            "cualquier decisión definitiva.",
            "Los diplomáticos esperan que los protocolos de adhesión se firmen antes de que "
            "termine el año.",
            "Los planificadores militares estudian cómo proteger los cables submarinos y los "
            "gasoductos de la región.",
            "Una encuesta reciente mostró que una clara mayoría de los votantes de ambos países "
            "apoya la adhesión.",
            "Las conversaciones se vieron empañadas por una disputa sobre la extradición de "
            "varios activistas.",
            "Las patrullas navales en la región se han reforzado desde la primavera.",
        ],
        "ru": [
            "Несколько делегаций заявили, что ратификация в национальных парламентах идёт "
            "быстрее, чем ожидалось.",
            "Одно правительство до сих пор не назначило дату голосования, ссылаясь на опасения "
            "по поводу экспорта оружия.",
            "Генеральный секретарь заявил, что расширение укрепит безопасность на севере "
            "континента.",
            "В совместных учениях, запланированных на осень, примут участие более {n} военных из "
            "обеих стран-кандидатов.",
            "Критики считают, что расширение повышает риск конфронтации вдоль протяжённой "
            "сухопутной границы.",
            "Расходы на модернизацию противовоздушной обороны лягут прежде всего на небольшие "
            "страны.",
            "Представители соседней столицы назвали этот шаг провокацией и пообещали ответ.",
            "Оборонные расходы стран альянса в прошлом году выросли на {pct}%, согласно новым "
            "данным.",
            "Аналитики считают, что настоящая проверка начнётся, когда придётся утверждать "
            "бюджеты на новые базы и топливные склады.",
            "Обе страны-кандидата уже привели свои вооружённые силы в соответствие с общими "
            "стандартами альянса.",
            "Оппозиционные партии потребовали публичного обсуждения до принятия окончательного "
            "решения.",
            "Дипломаты ожидают, что протоколы о вступлении будут подписаны до конца года.",
            "Военные планировщики изучают, как защитить подводные кабели и трубопроводы в регионе.",
            "Недавний опрос показал, что явное большинство избирателей в обеих странах "
            "поддерживает вступление.",
            "Переговоры были омрачены спором об экстрадиции нескольких активистов.",
            "С весны военно-морское патрулирование в регионе было усилено.",
        ],
    },
    "floods": {
        "en": [
            "Schools and sports halls have been opened as temporary shelters.",
            "Volunteers filled sandbags and carried furniture to upper floors.",
            "More than {n} people were evacuated from low-lying streets overnight.",
            "The weather service warned that water levels could keep rising until the middle of "
            "the week.",
            "Engineers are inspecting the dams upstream for signs of damage.",
            "Two bridges and a section of the motorway have been closed as a precaution.",
            "Farmers say that most of this year's harvest has already been lost.",
            "Power was cut to more than {n} households after a substation was flooded.",
            "The government has promised emergency payments for families whose houses were "
            "damaged.",
            "Local mayors say the money will not be enough to rebuild roads and schools.",
            "Scientists say such downpours have become more frequent over the past decade.",
            "Train services between the main towns in the valley have been suspended.",
            "Insurance companies expect claims to run into hundreds of millions.",
            "Army units were sent to help strengthen the embankments.",
            "Residents complained that the warnings came too late.",
            "Drinking water is being distributed in areas where the supply was contaminated.",
        ],
        "de": [
            "Schulen und Sporthallen wurden als Notunterkünfte geöffnet.",
            "Freiwillige füllten Sandsäcke und trugen Möbel in die oberen Stockwerke.",
            "Mehr als {n} Menschen wurden in der Nacht aus tiefer gelegenen Straßen in Sicherheit "
            "gebracht.",
            "Der Wetterdienst warnte, die Pegel könnten bis zur Mitte der Woche weiter steigen.",
            "Ingenieure untersuchen die Talsperren flussaufwärts auf Schäden.",
            "Zwei Brücken und ein Abschnitt der Autobahn wurden vorsorglich gesperrt.",
            "Landwirte sagen, der größte Teil der diesjährigen Ernte sei bereits verloren.",
            "Mehr als {n} Haushalte waren ohne Strom, nachdem ein Umspannwerk überflutet worden "
            "war.",
            "Die Regierung hat Soforthilfen für Familien zugesagt, deren Häuser beschädigt wurden.",
            "Die Bürgermeister sagen, das Geld reiche nicht, um Straßen und Schulen wieder "
            "aufzubauen.",
            "Wissenschaftler sagen, solche Starkregen seien im vergangenen Jahrzehnt häufiger "
            "geworden.",
            "Der Zugverkehr zwischen den größeren Orten im Tal wurde eingestellt.",
            "Versicherer rechnen mit Schäden in Höhe von Hunderten Millionen.",
            "Einheiten der Armee wurden entsandt, um die Deiche zu verstärken.",
            "Anwohner beklagten, die Warnungen seien zu spät gekommen.",
            "In Gebieten mit verunreinigter Versorgung wird Trinkwasser verteilt.",
        ],
        "fr": [
            "Des écoles et des gymnases ont été ouverts pour servir d'abris provisoires.",
            "Des bénévoles ont rempli des sacs de sable et monté les meubles aux étages.",
            "Plus de {n} personnes ont été évacuées des rues basses pendant la nuit.",
            "Le service météorologique a averti que le niveau de l'eau pourrait continuer de "
            "monter jusqu'au milieu de la semaine.",
            "Des ingénieurs inspectent les barrages en amont à la recherche de dégâts.",
            "Deux ponts et une portion de l'autoroute ont été fermés par précaution.",
            "Les agriculteurs affirment que l'essentiel de la récolte de cette année est déjà "
            "perdu.",
            "Plus de {n} foyers ont été privés d'électricité après l'inondation d'un poste "
            "électrique.",
            "Le gouvernement a promis des aides d'urgence aux familles dont la maison a été "
            "endommagée.",
            "Les maires estiment que cet argent ne suffira pas à reconstruire les routes et les "
            "écoles.",
            "Les scientifiques constatent que de telles averses sont devenues plus fréquentes au "
            "cours de la dernière décennie.",
            "La circulation des trains entre les principales villes de la vallée a été suspendue.",
            "Les assureurs s'attendent à des indemnisations de plusieurs centaines de millions.",
            "Des unités de l'armée ont été envoyées pour renforcer les digues.",
            "Les habitants se sont plaints que les alertes soient arrivées trop tard.",
            "De l'eau potable est distribuée dans les zones où le réseau a été contaminé.",
        ],
        "es": [
            "Se han abierto colegios y polideportivos como albergues provisionales.",
            "Los voluntarios llenaron sacos de arena y subieron los muebles a los pisos "
            "superiores.",
            "Más de {n} personas fueron evacuadas de las calles más bajas durante la noche.",
            "La agencia meteorológica advirtió de que el nivel del agua podría seguir subiendo "
            "hasta mediados de semana.",
            "Los ingenieros revisan las presas situadas aguas arriba en busca de daños.",
            "Dos puentes y un tramo de la autopista se han cerrado por precaución.",
            "Los agricultores aseguran que la mayor parte de la cosecha de este año ya se ha "
            "perdido.",
            "Más de {n} hogares se quedaron sin luz después de que se inundara una subestación.",
            "El gobierno ha prometido ayudas urgentes para las familias cuyas viviendas sufrieron "
            "daños.",
            "Los alcaldes afirman que ese dinero no bastará para reconstruir carreteras y "
            "escuelas.",
            "Los científicos señalan que este tipo de aguaceros se ha vuelto más frecuente en la "
            "última década.",
            "Se ha suspendido el servicio de trenes entre las principales localidades del valle.",
            "Las aseguradoras prevén indemnizaciones de cientos de millones.",
            "Se enviaron unidades del ejército para reforzar los diques.",
            "Los vecinos se quejaron de que los avisos llegaron demasiado tarde.",
            "Se está repartiendo agua potable en las zonas donde el suministro se contaminó.",
        ],
        "ru": [
            "Школы и спортивные залы открыты как временные пункты размещения.",
            "Волонтёры наполняли мешки с песком и переносили мебель на верхние этажи.",
            "Ночью из низменных кварталов были эвакуированы более {n} человек.",
            "Метеослужба предупредила, что уровень воды может расти до середины недели.",
            "Инженеры проверяют плотины выше по течению на предмет повреждений.",
            "Два моста и участок автомагистрали закрыты в качестве меры предосторожности.",
            "Фермеры говорят, что большая часть урожая этого года уже погибла.",
            "Более {n} домохозяйств остались без электричества после затопления подстанции.",
            "Правительство пообещало экстренные выплаты семьям, чьи дома пострадали.",
            "Главы местных администраций говорят, что этих денег не хватит на восстановление "
            "дорог и школ.",
            "Учёные отмечают, что за последнее десятилетие такие ливни стали происходить чаще.",
            "Движение поездов между крупными городами долины приостановлено.",
            "Страховые компании ожидают выплат на сотни миллионов.",
            "Армейские подразделения направлены на укрепление дамб.",
            "Жители жаловались, что предупреждения поступили слишком поздно.",
            "В районах, где водопровод загрязнён, раздают питьевую воду.",
        ],
    },
    "rates": {
        "en": [
            "The governor said further increases could not be ruled out if prices rose again.",
            "Economists had expected the bank to wait until the summer before cutting rates.",
            "Energy prices have fallen sharply since the beginning of the year.",
            "Food prices, however, are still rising faster than wages.",
            "The national currency weakened slightly after the announcement.",
            "Mortgage holders have seen their monthly payments rise for two years in a row.",
            "Business groups called for lower rates to support investment.",
            "Unemployment remained low at {pct} percent, according to the statistics office.",
            "The bank now expects the economy to grow only modestly this year.",
            "Several members of the board voted for a cut, the minutes showed.",
            "Government bond yields fell to their lowest level in several months.",
            "Retailers reported weaker sales in the first three months of the year.",
            "Trade unions are demanding higher wages to make up for the loss of purchasing power.",
            "The next meeting of the bank is scheduled for the beginning of next month.",
            "Banks have tightened their lending conditions for small companies.",
            "House prices have fallen in most large cities.",
        ],
        "de": [
            "Der Notenbankchef sagte, weitere Erhöhungen seien nicht ausgeschlossen, falls die "
            "Preise wieder stiegen.",
            "Ökonomen hatten erwartet, dass die Bank mit einer Zinssenkung bis zum Sommer wartet.",
            "Die Energiepreise sind seit Jahresbeginn deutlich gefallen.",
            "Die Lebensmittelpreise steigen allerdings noch immer schneller als die Löhne.",
            "Die Landeswährung gab nach der Ankündigung leicht nach.",
            "Für Hauskreditnehmer sind die monatlichen Raten zwei Jahre in Folge gestiegen.",
            "Wirtschaftsverbände forderten niedrigere Zinsen, um Investitionen zu stützen.",
            "Die Arbeitslosigkeit blieb nach Angaben des Statistikamts mit {pct} Prozent niedrig.",
            "Die Bank rechnet für dieses Jahr nur noch mit einem bescheidenen Wachstum.",
            "Mehrere Mitglieder des Direktoriums stimmten für eine Senkung, wie das Protokoll "
            "zeigt.",
            "Die Renditen der Staatsanleihen fielen auf den tiefsten Stand seit mehreren Monaten.",
            "Der Einzelhandel meldete für die ersten drei Monate des Jahres schwächere Umsätze.",
            "Die Gewerkschaften verlangen höhere Löhne als Ausgleich für den Kaufkraftverlust.",
            "Die nächste Sitzung der Bank ist für Anfang des kommenden Monats angesetzt.",
            "Die Banken haben ihre Kreditbedingungen für kleine Unternehmen verschärft.",
            "Die Immobilienpreise sind in den meisten Großstädten gesunken.",
        ],
        "fr": [
            "Le gouverneur a déclaré que de nouvelles hausses n'étaient pas exclues si les prix "
            "repartaient à la hausse.",
            "Les économistes s'attendaient à ce que la banque attende l'été avant de baisser ses "
            "taux.",
            "Les prix de l'énergie ont fortement baissé depuis le début de l'année.",
            "Les prix alimentaires augmentent toutefois encore plus vite que les salaires.",
            "La monnaie nationale s'est légèrement affaiblie après l'annonce.",
            "Les mensualités des emprunteurs immobiliers ont augmenté deux années de suite.",
            "Les organisations patronales ont réclamé des taux plus bas pour soutenir "
            "l'investissement.",
            "Le chômage est resté faible à {pct} %, selon l'office de la statistique.",
            "La banque ne prévoit plus qu'une croissance modeste de l'économie cette année.",
            "Plusieurs membres du conseil ont voté pour une baisse, selon le compte rendu.",
            "Les rendements des obligations d'État sont tombés à leur plus bas niveau depuis "
            "plusieurs mois.",
            "Les commerçants ont fait état de ventes plus faibles au cours des trois premiers "
            "mois de l'année.",
            "Les syndicats réclament des hausses de salaire pour compenser la perte de pouvoir "
            "d'achat.",
            "La prochaine réunion de la banque est prévue au début du mois prochain.",
            "Les banques ont durci leurs conditions de crédit pour les petites entreprises.",
            "Les prix de l'immobilier ont baissé dans la plupart des grandes villes.",
        ],
        "es": [
            "El gobernador dijo que no se podían descartar nuevas subidas si los precios volvían "
            "a aumentar.",
            "Los economistas esperaban que el banco aguardara hasta el verano antes de bajar los "
            "tipos.",
            "Los precios de la energía han caído con fuerza desde principios de año.",
            "Los precios de los alimentos, sin embargo, siguen subiendo más rápido que los "
            "salarios.",
            "La moneda nacional se debilitó ligeramente tras el anuncio.",
            "Las cuotas mensuales de las hipotecas han subido dos años seguidos.",
            "Las organizaciones empresariales pidieron tipos más bajos para apoyar la inversión.",
            "El paro se mantuvo bajo, en el {pct} %, según la oficina de estadística.",
            "El banco prevé ahora que la economía crezca solo de forma moderada este año.",
            "Varios miembros del consejo votaron a favor de una bajada, según las actas.",
            "La rentabilidad de la deuda pública cayó a su nivel más bajo en varios meses.",
            "Los comercios registraron ventas más débiles en los tres primeros meses del año.",
            "Los sindicatos exigen subidas salariales para compensar la pérdida de poder "
            "adquisitivo.",
            "La próxima reunión del banco está prevista para principios del mes que viene.",
            "Los bancos han endurecido las condiciones de crédito para las pequeñas empresas.",
            "El precio de la vivienda ha bajado en la mayoría de las grandes ciudades.",
        ],
        "ru": [
            "Глава банка заявил, что не исключает дальнейшего повышения, если цены снова пойдут "
            "вверх.",
            "Экономисты ожидали, что банк подождёт со снижением ставки до лета.",
            "С начала года цены на энергоносители резко снизились.",
            "Однако продукты питания по-прежнему дорожают быстрее, чем растут зарплаты.",
            "После объявления национальная валюта немного ослабла.",
            "Ежемесячные платежи по ипотеке растут уже второй год подряд.",
            "Деловые объединения призвали снизить ставки, чтобы поддержать инвестиции.",
            "Безработица, по данным статистического ведомства, осталась низкой и составила {pct}%.",
            "Теперь банк ожидает лишь умеренного роста экономики в этом году.",
            "Как следует из протокола, несколько членов совета голосовали за снижение.",
            "Доходность государственных облигаций опустилась до минимума за несколько месяцев.",
            "Розничные сети сообщили о снижении продаж в первые три месяца года.",
            "Профсоюзы требуют повышения зарплат, чтобы компенсировать потерю покупательной "
            "способности.",
            "Следующее заседание банка назначено на начало следующего месяца.",
            "Банки ужесточили условия кредитования для малых предприятий.",
            "В большинстве крупных городов цены на жильё снизились.",
        ],
    },
}

_QUOTES: Final[dict[str, dict[str, list[str]]]] = {
    "alliance": {
        "en": [
            "We are closer to an agreement than we have ever been",
            "Nobody should underestimate how much work remains",
            "This decision will shape the security of the region for decades",
            "We expect every member to keep its promises",
        ],
        "de": [
            "Wir waren einer Einigung noch nie so nahe",
            "Niemand sollte unterschätzen, wie viel Arbeit noch vor uns liegt",
            "Diese Entscheidung wird die Sicherheit der Region für Jahrzehnte prägen",
            "Wir erwarten, dass jedes Mitglied seine Zusagen einhält",
        ],
        "fr": [
            "Nous n'avons jamais été aussi près d'un accord",
            "Personne ne devrait sous-estimer le travail qui reste à faire",
            "Cette décision façonnera la sécurité de la région pour des décennies",
            "Nous attendons de chaque membre qu'il tienne ses promesses",
        ],
        "es": [
            "Nunca hemos estado tan cerca de un acuerdo",
            "Nadie debería subestimar todo el trabajo que queda por hacer",
            "Esta decisión marcará la seguridad de la región durante décadas",
            "Esperamos que cada miembro cumpla sus promesas",
        ],
        "ru": [
            "Мы никогда не были так близки к соглашению",
            "Никто не должен недооценивать, сколько работы ещё предстоит",
            "Это решение определит безопасность региона на десятилетия",
            "Мы ожидаем, что каждый участник выполнит свои обещания",
        ],
    },
    "floods": {
        "en": [
            "I have never seen the water rise so fast",
            "We will not leave anyone behind",
            "The next two days will be critical",
            "We need a long-term plan, not just sandbags",
        ],
        "de": [
            "Ich habe das Wasser noch nie so schnell steigen sehen",
            "Wir werden niemanden zurücklassen",
            "Die nächsten zwei Tage werden entscheidend sein",
            "Wir brauchen einen langfristigen Plan, nicht nur Sandsäcke",
        ],
        "fr": [
            "Je n'ai jamais vu l'eau monter aussi vite",
            "Nous n'abandonnerons personne",
            "Les deux prochains jours seront décisifs",
            "Il nous faut un plan à long terme, pas seulement des sacs de sable",
        ],
        "es": [
            "Nunca había visto subir el agua tan deprisa",
            "No vamos a dejar a nadie atrás",
            "Los próximos dos días serán decisivos",
            "Necesitamos un plan a largo plazo, no solo sacos de arena",
        ],
        "ru": [
            "Я никогда не видел, чтобы вода поднималась так быстро",
            "Мы никого не оставим в беде",
            "Ближайшие два дня будут решающими",
            "Нам нужен долгосрочный план, а не только мешки с песком",
        ],
    },
    "rates": {
        "en": [
            "It is too early to declare victory over inflation",
            "We will do whatever is necessary to bring prices under control",
            "The worst of the price shock is behind us",
            "Families are still feeling the pressure every month",
        ],
        "de": [
            "Es ist zu früh, den Sieg über die Inflation zu verkünden",
            "Wir werden alles Nötige tun, um die Preise unter Kontrolle zu bringen",
            "Das Schlimmste des Preisschocks liegt hinter uns",
            "Die Familien spüren den Druck noch immer jeden Monat",
        ],
        "fr": [
            "Il est trop tôt pour crier victoire face à l'inflation",
            "Nous ferons tout ce qui est nécessaire pour maîtriser les prix",
            "Le pire du choc des prix est derrière nous",
            "Les familles ressentent encore la pression chaque mois",
        ],
        "es": [
            "Es demasiado pronto para cantar victoria frente a la inflación",
            "Haremos todo lo necesario para controlar los precios",
            "Lo peor del golpe de los precios ya ha pasado",
            "Las familias siguen notando la presión cada mes",
        ],
        "ru": [
            "Пока рано объявлять о победе над инфляцией",
            "Мы сделаем всё необходимое, чтобы взять цены под контроль",
            "Худшее в ценовом шоке уже позади",
            "Семьи по-прежнему ощущают давление каждый месяц",
        ],
    },
}

_GENERIC: Final[dict[str, list[str]]] = {
    "en": [
        "More details are expected to be published {weekday}.",
        "The ministry did not respond to a request for comment.",
        "The situation remains tense, according to local media.",
        "Officials said they would review the decision next week.",
        "The issue is expected to dominate the next session of parliament.",
        "Opposition leaders accused the government of acting too slowly.",
        "A spokesperson said the authorities were monitoring the situation closely.",
        "The figures will be updated at the end of the month.",
    ],
    "de": [
        "Weitere Einzelheiten sollen {weekday} veröffentlicht werden.",
        "Das Ministerium reagierte nicht auf eine Bitte um Stellungnahme.",
        "Die Lage bleibt nach Berichten lokaler Medien angespannt.",
        "Die Behörden wollen die Entscheidung in der kommenden Woche überprüfen.",
        "Das Thema dürfte die nächste Sitzung des Parlaments beherrschen.",
        "Oppositionspolitiker warfen der Regierung vor, zu langsam zu handeln.",
        "Ein Sprecher sagte, die Behörden verfolgten die Lage genau.",
        "Die Zahlen werden Ende des Monats aktualisiert.",
    ],
    "fr": [
        "De plus amples détails devraient être publiés {weekday}.",
        "Le ministère n'a pas répondu à une demande de commentaire.",
        "La situation reste tendue, selon les médias locaux.",
        "Les autorités ont indiqué qu'elles réexamineraient la décision la semaine prochaine.",
        "La question devrait dominer la prochaine session du parlement.",
        "Les dirigeants de l'opposition ont accusé le gouvernement d'agir trop lentement.",
        "Un porte-parole a déclaré que les autorités suivaient la situation de près.",
        "Les chiffres seront mis à jour à la fin du mois.",
    ],
    "es": [
        "Se espera que {weekday} se publiquen más detalles.",
        "El ministerio no respondió a una solicitud de comentarios.",
        "La situación sigue siendo tensa, según los medios locales.",
        "Las autoridades dijeron que revisarán la decisión la próxima semana.",
        "Se espera que el asunto domine la próxima sesión del parlamento.",
        "Los líderes de la oposición acusaron al gobierno de actuar con demasiada lentitud.",
        "Un portavoz dijo que las autoridades siguen de cerca la situación.",
        "Las cifras se actualizarán a finales de mes.",
    ],
    "ru": [
        "Подробности, как ожидается, будут опубликованы {weekday}.",
        "В министерстве не ответили на просьбу о комментарии.",
        "По данным местных СМИ, ситуация остаётся напряжённой.",
        "Чиновники заявили, что пересмотрят решение на следующей неделе.",
        "Ожидается, что этот вопрос станет главным на следующей сессии парламента.",
        "Лидеры оппозиции обвинили правительство в медлительности.",
        "Представитель властей заявил, что ситуация находится под пристальным контролем.",
        "Данные будут обновлены в конце месяца.",
    ],
}

_WEEKDAYS: Final[dict[str, list[str]]] = {
    "en": ["on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "on Saturday"],
    "de": ["am Montag", "am Dienstag", "am Mittwoch", "am Donnerstag", "am Freitag", "am Samstag"],
    "fr": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"],
    "es": ["el lunes", "el martes", "el miércoles", "el jueves", "el viernes", "el sábado"],
    "ru": ["в понедельник", "во вторник", "в среду", "в четверг", "в пятницу", "в субботу"],
}

_CITIES: Final[dict[str, list[str]]] = {
    "en": ["Brussels", "Vienna", "Warsaw", "Lisbon", "Prague", "Helsinki", "Riga", "Dublin"],
    "de": ["Brüssel", "Wien", "Warschau", "Lissabon", "Prag", "Helsinki", "Riga", "Dublin"],
    "fr": ["Bruxelles", "Vienne", "Varsovie", "Lisbonne", "Prague", "Helsinki", "Riga", "Dublin"],
    "es": ["Bruselas", "Viena", "Varsovia", "Lisboa", "Praga", "Helsinki", "Riga", "Dublín"],
    # Locative case, since every Russian template uses the city after "в".
    "ru": ["Брюсселе", "Вене", "Варшаве", "Лиссабоне", "Праге", "Хельсинки", "Риге", "Дублине"],
}

# (name in Latin script, name in Cyrillic, grammatical gender)
_PEOPLE: Final = [
    ("Anna Keller", "Анна Келлер", "f"),
    ("Marek Novak", "Марек Новак", "m"),
    ("Laura Bianchi", "Лаура Бьянки", "f"),
    ("Jonas Berg", "Йонас Берг", "m"),
    ("Elena Petrova", "Елена Петрова", "f"),
    ("Tomas Lindqvist", "Томас Линдквист", "m"),
    ("Sofia Almeida", "София Алмейда", "f"),
    ("Pieter de Vries", "Питер де Врис", "m"),
]

_ROLES: Final[dict[str, dict[str, list[str]]]] = {
    "en": {
        "m": ["a government spokesperson", "an independent analyst", "a senior diplomat"],
        "f": ["a government spokesperson", "an independent analyst", "a senior diplomat"],
    },
    "de": {
        "m": ["ein Regierungssprecher", "ein unabhängiger Analyst", "ein hochrangiger Diplomat"],
        "f": [
            "eine Regierungssprecherin",
            "eine unabhängige Analystin",
            "eine hochrangige Diplomatin",
        ],
    },
    "fr": {
        "m": [
            "porte-parole du gouvernement",
            "analyste indépendant",
            "diplomate de haut rang",
        ],
        "f": [
            "porte-parole du gouvernement",
            "analyste indépendante",
            "diplomate de haut rang",
        ],
    },
    "es": {
        "m": ["portavoz del Gobierno", "analista independiente", "diplomático de alto rango"],
        "f": ["portavoz del Gobierno", "analista independiente", "diplomática de alto rango"],
    },
    "ru": {
        "m": ["представитель правительства", "независимый аналитик", "высокопоставленный дипломат"],
        "f": ["представитель правительства", "независимый аналитик", "высокопоставленный дипломат"],
    },
}

_QUOTE_FRAMES: Final[dict[str, dict[str, str]]] = {
    "en": {"m": '"{quote}," said {person}, {role}.', "f": '"{quote}," said {person}, {role}.'},
    "de": {"m": "„{quote}“, sagte {person}, {role}.", "f": "„{quote}“, sagte {person}, {role}."},
    "fr": {
        "m": "« {quote} », a déclaré {person}, {role}.",
        "f": "« {quote} », a déclaré {person}, {role}.",
    },
    "es": {
        "m": "«{quote}», declaró {person}, {role}.",
        "f": "«{quote}», declaró {person}, {role}.",
    },
    "ru": {
        "m": "«{quote}», — заявил {person}, {role}.",
        "f": "«{quote}», — заявила {person}, {role}.",
    },
}

# Lines a site wraps around the body that an extractor may keep: headers and footers.
_HEADERS: Final[dict[str, list[str]]] = {
    "en": [
        "Home | World | Europe | Business | Sport",
        "By our correspondent",
        "Listen to this article",
        "Published {n} minutes ago",
        "Breaking news: follow our live coverage",
        "Skip to main content",
    ],
    "de": [
        "Startseite | Politik | Ausland | Wirtschaft | Sport",
        "Von unserem Korrespondenten",
        "Artikel anhören",
        "Veröffentlicht vor {n} Minuten",
        "Eilmeldung: Alle Entwicklungen im Liveblog",
        "Zum Hauptinhalt springen",
    ],
    "fr": [
        "Accueil | International | Europe | Économie | Sport",
        "Par notre correspondant",
        "Écouter cet article",
        "Publié il y a {n} minutes",
        "Direct : suivez toutes les informations",
        "Aller au contenu principal",
    ],
    "es": [
        "Portada | Internacional | Europa | Economía | Deportes",
        "Por nuestro corresponsal",
        "Escuchar este artículo",
        "Publicado hace {n} minutos",
        "Última hora: siga la información en directo",
        "Ir al contenido principal",
    ],
    "ru": [
        "Главная | В мире | Европа | Экономика | Спорт",
        "Наш корреспондент",
        "Прослушать статью",
        "Опубликовано {n} мин. назад",
        "Срочно: следите за развитием событий",
        "Перейти к основному содержанию",
    ],
}

_FOOTERS: Final[dict[str, list[str]]] = {
    "en": [
        "Read more: the latest news from the region",
        "Sign up for our morning newsletter",
        "Share this article on social media",
        "© {n} Example News Group. All rights reserved.",
        "Related topics: Europe, Politics, Economy",
        "Have a story tip? Contact our newsroom.",
    ],
    "de": [
        "Mehr zum Thema: aktuelle Nachrichten aus der Region",
        "Abonnieren Sie unseren Newsletter am Morgen",
        "Diesen Artikel teilen",
        "© {n} Beispiel Mediengruppe. Alle Rechte vorbehalten.",
        "Verwandte Themen: Europa, Politik, Wirtschaft",
        "Haben Sie einen Hinweis? Schreiben Sie unserer Redaktion.",
    ],
    "fr": [
        "Lire aussi : toute l'actualité de la région",
        "Inscrivez-vous à notre lettre d'information du matin",
        "Partager cet article",
        "© {n} Groupe Exemple Presse. Tous droits réservés.",
        "Sujets associés : Europe, Politique, Économie",
        "Une information à nous signaler ? Contactez la rédaction.",
    ],
    "es": [
        "Lea también: las últimas noticias de la región",
        "Suscríbase a nuestro boletín matinal",
        "Compartir este artículo",
        "© {n} Grupo Ejemplo Noticias. Todos los derechos reservados.",
        "Temas relacionados: Europa, Política, Economía",
        "¿Tiene una pista? Escriba a nuestra redacción.",
    ],
    "ru": [
        "Читайте также: последние новости региона",
        "Подпишитесь на нашу утреннюю рассылку",
        "Поделиться статьёй",
        "© {n} Медиагруппа «Пример». Все права защищены.",
        "Похожие темы: Европа, Политика, Экономика",
        "Есть информация? Напишите в редакцию.",
    ],
}

_BODY_SENTENCES: Final = 6  # per article, drawn from 16 per topic: a news brief of ~150 words
_GENERIC_SENTENCES: Final = 2


@dataclass(frozen=True, slots=True)
class ArticlePlan:
    """What an article says, independent of its language: render it in any of LANGUAGES."""

    topic: str
    title: int
    lead: int
    body: tuple[int, ...]
    quote: int
    generic: tuple[int, ...]
    city: int
    weekday: int
    person: int
    role: int
    numbers: tuple[int, ...] = field(default=())
    # Percentages in tenths (35 -> "3.5"): one for the title and lead, one for the body.
    pct_tenths: tuple[int, int] = (35, 48)


@dataclass(frozen=True, slots=True)
class GeneratedArticle:
    """One generated article; near-duplicates name their original in ``duplicate_of``."""

    id: str
    language: str
    topic: str
    title: str
    text: str
    duplicate_of: str | None = None
    variant: Variant = "original"


def random_plan(rng: random.Random, topic: str | None = None) -> ArticlePlan:
    """Draw a random plan (sentences and fillers) for an article on ``topic`` (or any topic)."""
    topic = topic if topic is not None else rng.choice(TOPICS)
    return ArticlePlan(
        topic=topic,
        title=rng.randrange(len(_TITLES[topic]["en"])),
        lead=rng.randrange(len(_LEADS[topic]["en"])),
        body=tuple(rng.sample(range(len(_BODY[topic]["en"])), _BODY_SENTENCES)),
        quote=rng.randrange(len(_QUOTES[topic]["en"])),
        generic=tuple(rng.sample(range(len(_GENERIC["en"])), _GENERIC_SENTENCES)),
        city=rng.randrange(len(_CITIES["en"])),
        weekday=rng.randrange(len(_WEEKDAYS["en"])),
        person=rng.randrange(len(_PEOPLE)),
        role=rng.randrange(3),
        numbers=tuple(rng.randrange(120, 9500) for _ in range(3)),
        pct_tenths=(rng.randrange(12, 99), rng.randrange(12, 99)),
    )


def render(plan: ArticlePlan, language: str) -> tuple[str, str]:
    """Return (title, text) of ``plan`` in ``language``: the same story in every language."""
    latin, cyrillic, gender = _PEOPLE[plan.person]
    mark = "." if language == "en" else ","
    pcts = [f"{tenths // 10}{mark}{tenths % 10}" for tenths in plan.pct_tenths]
    numbers = iter(plan.numbers)
    slots = {
        "city": _CITIES[language][plan.city],
        "weekday": _WEEKDAYS[language][plan.weekday],
        "person": cyrillic if language == "ru" else latin,
    }

    def fill(template: str, pct: str) -> str:
        return template.format(n=next(numbers, 500), pct=pct, **slots)

    title = fill(_TITLES[plan.topic][language][plan.title], pcts[0])
    quote = _QUOTE_FRAMES[language][gender].format(
        quote=_QUOTES[plan.topic][language][plan.quote],
        person=slots["person"],
        role=_ROLES[language][gender][plan.role],
    )
    body = [fill(_BODY[plan.topic][language][i], pcts[1]) for i in plan.body]
    generic = [fill(_GENERIC[language][i], pcts[1]) for i in plan.generic]
    # Lead, two body sentences, the quote, the rest of the body, then the closing lines.
    lead = fill(_LEADS[plan.topic][language][plan.lead], pcts[0])
    sentences = [lead, *body[:2], quote, *body[2:]]
    sentences += generic
    paragraphs = [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]
    return title, "\n\n".join(paragraphs)


def wrap_in_site(body: str, language: str, rng: random.Random) -> str:
    """Surround ``body`` with a site's header and footer lines, as a lax extractor keeps them."""
    headers = rng.sample(_HEADERS[language], 3)
    footers = rng.sample(_FOOTERS[language], 3)
    year = rng.randrange(2015, 2026)
    top = [line.format(n=rng.randrange(2, 59)) for line in headers]
    bottom = [line.format(n=year) for line in footers]
    return "\n".join([*top, "", body, "", *bottom])


def edit_words(text: str, rate: float, rng: random.Random) -> str:
    """Edit about ``rate`` of the words: substitutions, insertions and deletions, spread out.

    Replacement and inserted words come from the text itself, so the language stays the same.
    """
    paragraphs = [p.split(" ") for p in text.split("\n")]
    vocabulary = [w for words in paragraphs for w in words if w]
    edited: list[str] = []
    for words in paragraphs:
        out: list[str] = []
        for word in words:
            if not word or rng.random() >= rate:
                out.append(word)
                continue
            operation = rng.random()
            if operation < 0.5:  # substitute
                out.append(rng.choice(vocabulary))
            elif operation < 0.75:  # insert a word before this one
                out.extend([rng.choice(vocabulary), word])
            # else: delete
        edited.append(" ".join(out))
    return "\n".join(edited)


def generate_articles(n: int, seed: int = 0) -> list[GeneratedArticle]:
    """Generate ``n`` articles in LANGUAGES; about 15% are near-duplicates of earlier ones.

    Near-duplicates are the same story re-published with another site's header and footer,
    or with about 10% of its words edited; the same (n, seed) always gives the same corpus.
    """
    rng = random.Random(seed)
    articles: list[GeneratedArticle] = []
    originals: list[tuple[GeneratedArticle, str]] = []  # with the body before site wrapping
    for index in range(n):
        ident = f"g{seed}-{index:06d}"
        if originals and rng.random() < 0.15:
            source, body = rng.choice(originals)
            if rng.random() < 0.5:
                text = wrap_in_site(body, source.language, rng)
                variant: Variant = "boilerplate"
            else:
                text = edit_words(source.text, 0.10, rng)
                variant = "edited"
            articles.append(
                replace(source, id=ident, text=text, duplicate_of=source.id, variant=variant)
            )
            continue
        language = rng.choice(LANGUAGES)
        plan = random_plan(rng)
        title, body = render(plan, language)
        article = GeneratedArticle(
            ident, language, plan.topic, title, wrap_in_site(body, language, rng)
        )
        articles.append(article)
        originals.append((article, body))
    return articles


# Same-event reports (bench/bench_events.py). Independently written reports of one event share
# its facts (two people, a place, a date, figures) and nothing else, in any language. Names are
# built from syllables written in both scripts, so a name and its Cyrillic spelling reduce to
# one consonant skeleton (pipeline.normalise.events); how often a person or a place is in the
# news follows Zipf's law, as in real news, so some of them are in every day's candidates.

Person = tuple[str, str, str]  # (Latin, Cyrillic, grammatical gender)

_FIRST_NAMES: Final[tuple[Person, ...]] = (
    ("Marta", "Марта", "f"),
    ("Ivan", "Иван", "m"),
    ("Petra", "Петра", "f"),
    ("Oskar", "Оскар", "m"),
    ("Nina", "Нина", "f"),
    ("Viktor", "Виктор", "m"),
    ("Lena", "Лена", "f"),
    ("Boris", "Борис", "m"),
    ("Klara", "Клара", "f"),
    ("Pavel", "Павел", "m"),
    ("Irina", "Ирина", "f"),
    ("Milan", "Милан", "m"),
    ("Vera", "Вера", "f"),
    ("Stefan", "Стефан", "m"),
    ("Alina", "Алина", "f"),
    ("Robert", "Роберт", "m"),
    ("Daria", "Дария", "f"),
    ("Felix", "Феликс", "m"),
    ("Tamara", "Тамара", "f"),
    ("Anton", "Антон", "m"),
    ("Adam", "Адам", "m"),
    ("Agata", "Агата", "f"),
    ("Bruno", "Бруно", "m"),
    ("Dina", "Дина", "f"),
    ("Edgar", "Эдгар", "m"),
    ("Emil", "Эмиль", "m"),
    ("Filip", "Филип", "m"),
    ("Greta", "Грета", "f"),
    ("Igor", "Игорь", "m"),
    ("Karl", "Карл", "m"),
    ("Lidia", "Лидия", "f"),
    ("Marko", "Марко", "m"),
    ("Nadia", "Надя", "f"),
    ("Olaf", "Олаф", "m"),
    ("Paula", "Паула", "f"),
    ("Rita", "Рита", "f"),
    ("Simon", "Симон", "m"),
    ("Teodor", "Теодор", "m"),
    ("Valentin", "Валентин", "m"),
    ("Zoran", "Зоран", "m"),
    ("Lukas", "Лукас", "m"),
    ("Maria", "Мария", "f"),
    ("Nikolai", "Николай", "m"),
    ("Ramona", "Рамона", "f"),
    ("Sabina", "Сабина", "f"),
    ("Timur", "Тимур", "m"),
    ("Leon", "Леон", "m"),
    ("Erik", "Эрик", "m"),
    ("Denis", "Денис", "m"),
    ("Natalia", "Наталья", "f"),
    ("Kristina", "Кристина", "f"),
    ("Roman", "Роман", "m"),
    ("Diana", "Диана", "f"),
    ("Gleb", "Глеб", "m"),
    ("Larisa", "Лариса", "f"),
    ("Matvei", "Матвей", "m"),
    ("Polina", "Полина", "f"),
    ("Arkadi", "Аркадий", "m"),
    ("Yulia", "Юлия", "f"),
    ("Eduard", "Эдуард", "m"),
)
# Consonants that transliterate one way only (no s/z, c/k or h), so both spellings of a
# syllable give one key.
_SYLLABLES: Final = (
    ("ba", "ба"),
    ("ko", "ко"),
    ("ra", "ра"),
    ("len", "лен"),
    ("vi", "ви"),
    ("dor", "дор"),
    ("mi", "ми"),
    ("sta", "ста"),
    ("ner", "нер"),
    ("pol", "пол"),
    ("ti", "ти"),
    ("gar", "гар"),
    ("fel", "фел"),
    ("mon", "мон"),
    ("ri", "ри"),
    ("sek", "сек"),
    ("du", "ду"),
    ("bor", "бор"),
    ("nu", "ну"),
    ("lat", "лат"),
)
_SURNAME_ENDINGS: Final = (("ov", "ов"), ("in", "ин"), ("ski", "ски"), ("er", "ер"), ("ak", "ак"))
_PLACE_ENDINGS: Final = (
    ("burg", "бург"),
    ("ovo", "ово"),
    ("grad", "град"),
    ("polis", "полис"),
    ("dorf", "дорф"),
    ("ino", "ино"),
)
# Month names, January first; Russian in the genitive, as after a day (14 марта).
_MONTH_NAMES: Final = {
    "en": "January February March April May June July August September October November December",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
    "diciembre",
    "ru": "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
}
_DATE_FORMATS: Final = {"en": "{d} {m}", "de": "{d}. {m}", "fr": "{d} {m}", "es": "{d} de {m}"}
_THOUSANDS_MARKS: Final = {"en": ",", "de": ".", "es": ".", "fr": "\u00a0", "ru": "\u00a0"}
# Sentences that carry an event's facts: {date}, {person} (the second person), {place}, the
# figures {n} and {m}; Russian verbs agree with the person ({said}: m, f). One has no date.
_FACT_FRAMES: Final[dict[str, list[str]]] = {
    "en": [
        "On {date}, {person} told reporters in {place} that {n} people had been affected.",
        "Figures released on {date} put the number at {n}, up from {m} a week earlier, "
        "{person} said.",
        "Speaking in {place} on {date}, {person} said about {n} households and {m} businesses "
        "were involved.",
        "In {place}, {person} said that {n} people had been affected and {m} more were at risk.",
    ],
    "de": [
        "Am {date} sagte {person} vor der Presse in {place}, {n} Menschen seien betroffen.",
        "Nach den am {date} veröffentlichten Zahlen sind {n} Menschen betroffen, eine Woche "
        "zuvor waren es {m}, sagte {person}.",
        "In {place} sprach {person} am {date} von etwa {n} Haushalten und {m} Betrieben.",
        "In {place} sagte {person}, {n} Menschen seien betroffen und {m} weitere gefährdet.",
    ],
    "fr": [
        "Le {date}, {person} a déclaré à la presse à {place} que {n} personnes étaient touchées.",
        "Selon les chiffres publiés le {date}, {n} personnes sont concernées, contre {m} une "
        "semaine plus tôt, a précisé {person}.",
        "S'exprimant à {place} le {date}, {person} a évoqué environ {n} foyers et {m} "
        "entreprises concernés.",
        "À {place}, {person} a indiqué que {n} personnes étaient touchées et {m} autres menacées.",
    ],
    "es": [
        "El {date}, {person} dijo a la prensa en {place} que {n} personas se habían visto "
        "afectadas.",
        "Según las cifras publicadas el {date}, hay {n} afectados, frente a {m} una semana "
        "antes, precisó {person}.",
        "En declaraciones en {place} el {date}, {person} habló de unos {n} hogares y {m} "
        "empresas afectados.",
        "En {place}, {person} indicó que hay {n} personas afectadas y otras {m} en riesgo.",
    ],
    "ru": [
        "{date} {person} {said} журналистам в {place}, что пострадали {n} человек.",
        "По данным, опубликованным {date}, пострадавших {n}, неделей ранее их было {m}.",
        "Выступая в {place} {date}, {person} {said} примерно о {n} домохозяйствах и {m} "
        "предприятиях.",
        "В {place}, по словам властей, пострадали {n} человек, ещё {m} находятся в зоне риска.",
    ],
}
_SAID_RU: Final = {"m": "сообщил", "f": "сообщила"}


@dataclass(frozen=True, slots=True)
class EventFacts:
    """What every report of one event says, in any language: who, where, when, how many."""

    topic: str
    people: tuple[Person, Person]
    place: tuple[str, str]  # (Latin, Cyrillic)
    day: date
    figures: tuple[int, int, int]
    pct_tenths: tuple[int, int]


class EventPools:
    """Generated people and places, and how often each is in the news (Zipf's law)."""

    def __init__(
        self, seed: int = 0, people: int = 20_000, places: int = 4000, exponent: float = 0.8
    ) -> None:
        rng = random.Random(f"event-pools-{seed}")
        self.people = [self._person(rng) for _ in range(people)]
        self.places = [self._name(rng, _PLACE_ENDINGS, 2) for _ in range(places)]
        self._people_weights = list(accumulate(1 / (r + 1) ** exponent for r in range(people)))
        self._place_weights = list(accumulate(1 / (r + 1) ** exponent for r in range(places)))

    @staticmethod
    def _name(
        rng: random.Random, endings: tuple[tuple[str, str], ...], syllables: int
    ) -> tuple[str, str]:
        parts = [rng.choice(_SYLLABLES) for _ in range(rng.randint(syllables, syllables + 1))]
        parts.append(rng.choice(endings))
        latin = "".join(p[0] for p in parts)
        return latin.capitalize(), "".join(p[1] for p in parts).capitalize()

    @classmethod
    def _person(cls, rng: random.Random) -> Person:
        first_latin, first_cyrillic, gender = rng.choice(_FIRST_NAMES)
        last_latin, last_cyrillic = cls._name(rng, _SURNAME_ENDINGS, 1)
        return f"{first_latin} {last_latin}", f"{first_cyrillic} {last_cyrillic}", gender

    def draw(self, rng: random.Random, day: date, topic: str | None = None) -> EventFacts:
        """The facts of a new event on ``day``: two people, a place and figures, drawn."""
        first, second = rng.choices(self.people, cum_weights=self._people_weights, k=2)
        (place,) = rng.choices(self.places, cum_weights=self._place_weights)
        return EventFacts(
            topic=topic if topic is not None else rng.choice(TOPICS),
            people=(first, second),
            place=place,
            day=day,
            # Log-uniform, as counts in the news are: a few dozen to a few hundred thousand.
            figures=(_figure(rng), _figure(rng), _figure(rng)),
            pct_tenths=(rng.randrange(12, 99), rng.randrange(12, 99)),
        )


def _figure(rng: random.Random) -> int:
    return round(math.exp(rng.uniform(math.log(12), math.log(250_000))))


def format_figure(value: int, language: str) -> str:
    """``value`` with the thousands separator of ``language`` (4,250; 4.250; 4 250)."""
    return f"{value:,}".replace(",", _THOUSANDS_MARKS[language])


def format_day(day: date, language: str) -> str:
    """``day`` as a news report in ``language`` writes it: 14 March, 14. März, 14 марта."""
    month = _MONTH_NAMES[language].split()[day.month - 1]
    return _DATE_FORMATS.get(language, "{d} {m}").format(d=day.day, m=month)


def render_report(facts: EventFacts, language: str, rng: random.Random) -> tuple[str, str]:
    """(title, text) of one report of the event ``facts`` tell, written independently.

    Each report draws its own title, lead, body, quote and fact sentences (one or two of
    _FACT_FRAMES), so two reports of one event, even in one language, share the facts and
    little of their wording.
    """
    plan = random_plan(rng, facts.topic)
    cyrillic = language == "ru"
    first, second = (p[1] if cyrillic else p[0] for p in facts.people)
    gender = facts.people[0][2]
    mark = "." if language == "en" else ","
    pcts = [f"{tenths // 10}{mark}{tenths % 10}" for tenths in facts.pct_tenths]
    figures = [format_figure(f, language) for f in facts.figures]
    slots = {
        "city": facts.place[1] if cyrillic else facts.place[0],
        "weekday": _WEEKDAYS[language][plan.weekday],
        "person": first,
    }

    def fill(template: str, pct: str) -> str:
        return template.format(n=figures[2], pct=pct, **slots)

    title = fill(_TITLES[plan.topic][language][plan.title], pcts[0])
    quote = _QUOTE_FRAMES[language][gender].format(
        quote=_QUOTES[plan.topic][language][plan.quote],
        person=first,
        role=_ROLES[language][gender][plan.role],
    )
    frames = rng.sample(_FACT_FRAMES[language], rng.randint(1, 2))
    facts_said = [
        frame.format(
            date=format_day(facts.day, language),
            person=second,
            place=slots["city"],
            n=figures[0],
            m=figures[1],
            said=_SAID_RU[facts.people[1][2]],
        )
        for frame in frames
    ]
    body = [fill(_BODY[plan.topic][language][i], pcts[1]) for i in plan.body]
    generic = [fill(_GENERIC[language][i], pcts[1]) for i in plan.generic]
    lead = fill(_LEADS[plan.topic][language][plan.lead], pcts[0])
    sentences = [lead, *facts_said, body[0], quote, *body[1:], *generic]
    paragraphs = [" ".join(sentences[i : i + 3]) for i in range(0, len(sentences), 3)]
    return title, wrap_in_site("\n\n".join(paragraphs), language, rng)
