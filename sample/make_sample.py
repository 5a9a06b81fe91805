"""Writes parabeam's bundled sample corpus (sentences written for this project, not taken from any dataset).

Twenty sentences are planted in five languages (en, de, fr, es, zh) as translations of each other; every
language also gets unrelated sentences that have no translation. Documents mix planted and unrelated sentences
in different orders, one line per paragraph: a planted sentence is a paragraph of its own, unrelated neighbours
share one; they go into WET (en, de, zh) and CCNet-style JSON lines (fr, es). ``gold.tsv`` lists every
planted pair for every language pair. Run: ``python sample/make_sample.py`` (deterministic).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random

PLANTED = [
    {"en": "The old lighthouse on the northern cliff was repaired last summer.",
     "de": "Der alte Leuchtturm an der Nordklippe wurde letzten Sommer repariert.",
     "fr": "Le vieux phare de la falaise nord a été réparé l'été dernier.",
     "es": "El viejo faro del acantilado norte fue reparado el verano pasado.",
     "zh": "北边悬崖上的旧灯塔去年夏天修好了。"},
    {"en": "My grandmother grows tomatoes and beans in her small garden.",
     "de": "Meine Großmutter baut in ihrem kleinen Garten Tomaten und Bohnen an.",
     "fr": "Ma grand-mère cultive des tomates et des haricots dans son petit jardin.",
     "es": "Mi abuela cultiva tomates y frijoles en su pequeño jardín.",
     "zh": "我奶奶在她的小花园里种西红柿和豆子。"},
    {"en": "The train to the capital leaves every morning at seven o'clock.",
     "de": "Der Zug in die Hauptstadt fährt jeden Morgen um sieben Uhr ab.",
     "fr": "Le train pour la capitale part tous les matins à sept heures.",
     "es": "El tren a la capital sale todas las mañanas a las siete.",
     "zh": "开往首都的火车每天早上七点出发。"},
    {"en": "Scientists discovered a new species of frog in the rainforest.",
     "de": "Wissenschaftler haben im Regenwald eine neue Froschart entdeckt.",
     "fr": "Des scientifiques ont découvert une nouvelle espèce de grenouille dans la forêt tropicale.",
     "es": "Los científicos descubrieron una nueva especie de rana en la selva tropical.",
     "zh": "科学家在热带雨林中发现了一种新的青蛙。"},
    {"en": "The museum will be closed on Monday because of a power outage.",
     "de": "Das Museum bleibt am Montag wegen eines Stromausfalls geschlossen.",
     "fr": "Le musée sera fermé lundi en raison d'une coupure de courant.",
     "es": "El museo estará cerrado el lunes debido a un corte de electricidad.",
     "zh": "由于停电，博物馆星期一将关闭。"},
    {"en": "She learned to play the violin when she was eight years old.",
     "de": "Sie hat mit acht Jahren gelernt, Geige zu spielen.",
     "fr": "Elle a appris à jouer du violon quand elle avait huit ans.",
     "es": "Aprendió a tocar el violín cuando tenía ocho años.",
     "zh": "她八岁时学会了拉小提琴。"},
    {"en": "Heavy rain caused flooding in several villages along the river.",
     "de": "Starker Regen verursachte Überschwemmungen in mehreren Dörfern entlang des Flusses.",
     "fr": "De fortes pluies ont provoqué des inondations dans plusieurs villages le long de la rivière.",
     "es": "Las fuertes lluvias provocaron inundaciones en varios pueblos a lo largo del río.",
     "zh": "大雨导致河边的几个村庄发生了洪水。"},
    {"en": "The bakery on the corner sells fresh bread every day.",
     "de": "Die Bäckerei an der Ecke verkauft jeden Tag frisches Brot.",
     "fr": "La boulangerie du coin vend du pain frais tous les jours.",
     "es": "La panadería de la esquina vende pan fresco todos los días.",
     "zh": "街角的面包店每天都卖新鲜面包。"},
    {"en": "Our team won the football match by three goals to one.",
     "de": "Unsere Mannschaft hat das Fußballspiel mit drei zu eins gewonnen.",
     "fr": "Notre équipe a gagné le match de football trois buts à un.",
     "es": "Nuestro equipo ganó el partido de fútbol por tres goles a uno.",
     "zh": "我们队以三比一赢得了足球比赛。"},
    {"en": "The doctor advised him to drink more water and sleep longer.",
     "de": "Der Arzt riet ihm, mehr Wasser zu trinken und länger zu schlafen.",
     "fr": "Le médecin lui a conseillé de boire plus d'eau et de dormir plus longtemps.",
     "es": "El médico le aconsejó beber más agua y dormir más tiempo.",
     "zh": "医生建议他多喝水，多睡觉。"},
    {"en": "A large ship carrying containers arrived at the port yesterday.",
     "de": "Gestern kam ein großes Containerschiff im Hafen an.",
     "fr": "Un grand navire transportant des conteneurs est arrivé au port hier.",
     "es": "Ayer llegó al puerto un gran barco que transportaba contenedores.",
     "zh": "昨天一艘装满集装箱的大船抵达了港口。"},
    {"en": "The children built a snowman in front of the school.",
     "de": "Die Kinder bauten vor der Schule einen Schneemann.",
     "fr": "Les enfants ont construit un bonhomme de neige devant l'école.",
     "es": "Los niños construyeron un muñeco de nieve delante de la escuela.",
     "zh": "孩子们在学校前面堆了一个雪人。"},
    {"en": "The price of coffee has risen sharply this year.",
     "de": "Der Kaffeepreis ist in diesem Jahr stark gestiegen.",
     "fr": "Le prix du café a fortement augmenté cette année.",
     "es": "El precio del café ha subido mucho este año.",
     "zh": "今年咖啡的价格大幅上涨。"},
    {"en": "He forgot his umbrella on the bus and got wet on the way home.",
     "de": "Er hat seinen Regenschirm im Bus vergessen und wurde auf dem Heimweg nass.",
     "fr": "Il a oublié son parapluie dans le bus et s'est fait mouiller en rentrant chez lui.",
     "es": "Olvidó su paraguas en el autobús y se mojó de camino a casa.",
     "zh": "他把伞忘在了公共汽车上，回家的路上淋湿了。"},
    {"en": "The city council approved the plan to build a new bridge.",
     "de": "Der Stadtrat hat den Plan zum Bau einer neuen Brücke genehmigt.",
     "fr": "Le conseil municipal a approuvé le projet de construction d'un nouveau pont.",
     "es": "El ayuntamiento aprobó el plan para construir un nuevo puente.",
     "zh": "市议会批准了修建一座新桥的计划。"},
    {"en": "Bees are essential for pollinating many of the crops we eat.",
     "de": "Bienen sind für die Bestäubung vieler Pflanzen, die wir essen, unverzichtbar.",
     "fr": "Les abeilles sont essentielles à la pollinisation de nombreuses cultures que nous mangeons.",
     "es": "Las abejas son esenciales para polinizar muchos de los cultivos que comemos.",
     "zh": "蜜蜂对我们吃的许多农作物的授粉至关重要。"},
    {"en": "The library lends books, films and music free of charge.",
     "de": "Die Bibliothek verleiht Bücher, Filme und Musik kostenlos.",
     "fr": "La bibliothèque prête gratuitement des livres, des films et de la musique.",
     "es": "La biblioteca presta libros, películas y música de forma gratuita.",
     "zh": "图书馆免费借出书籍、电影和音乐。"},
    {"en": "Thousands of people gathered in the square to watch the fireworks.",
     "de": "Tausende Menschen versammelten sich auf dem Platz, um das Feuerwerk zu sehen.",
     "fr": "Des milliers de personnes se sont rassemblées sur la place pour regarder le feu d'artifice.",
     "es": "Miles de personas se reunieron en la plaza para ver los fuegos artificiales.",
     "zh": "成千上万的人聚集在广场上观看烟花。"},
    {"en": "The mountain road is dangerous in winter because of ice.",
     "de": "Die Bergstraße ist im Winter wegen des Eises gefährlich.",
     "fr": "La route de montagne est dangereuse en hiver à cause du verglas.",
     "es": "La carretera de montaña es peligrosa en invierno por el hielo.",
     "zh": "冬天山路因为结冰很危险。"},
    {"en": "My brother repairs old bicycles and gives them to students.",
     "de": "Mein Bruder repariert alte Fahrräder und schenkt sie Studenten.",
     "fr": "Mon frère répare de vieux vélos et les donne à des étudiants.",
     "es": "Mi hermano repara bicicletas viejas y se las regala a estudiantes.",
     "zh": "我哥哥修理旧自行车，然后送给学生。"},
]

# Sentences with no translation anywhere in the corpus (written independently per language).
UNRELATED = {
    "en": ["The committee postponed its decision on the budget until next spring.",
           "Most of the paintings in the gallery were donated by a private collector.",
           "Engineers are testing a battery that charges in under ten minutes.",
           "The festival attracts folk musicians from all over the region.",
           "Please remember to switch off the lights when you leave the office.",
           "The recipe calls for two cups of flour and a pinch of salt.",
           "Wolves have returned to the forest after an absence of a century.",
           "The airline cancelled dozens of flights because of a strike.",
           "He spent the whole weekend painting the fence in his backyard.",
           "Volunteers cleaned up the beach after the storm."],
    "de": ["Die Versicherung hat den Schaden am Dach noch nicht bezahlt.",
           "Im Herbst sammeln wir Pilze im Wald hinter dem Dorf.",
           "Das neue Gesetz tritt am ersten Januar in Kraft.",
           "Meine Nachbarin übt jeden Abend Klavier bei offenem Fenster.",
           "Die Ausstellung über alte Landkarten war überraschend gut besucht.",
           "Der Kühlschrank macht seit gestern ein seltsames Geräusch.",
           "In der Kantine gibt es freitags immer Fischstäbchen.",
           "Der Verlag plant eine Neuauflage des vergriffenen Romans.",
           "Wir haben uns auf dem Campingplatz am See kennengelernt.",
           "Die Baustelle vor unserem Haus dauert schon drei Monate."],
    "fr": ["Le festival de jazz a attiré un public plus jeune que prévu.",
           "Il faut arroser les plantes du balcon deux fois par semaine.",
           "La nouvelle ligne de tramway reliera la gare à l'université.",
           "Mon cousin collectionne les timbres anciens depuis son enfance.",
           "Le fromage de cette ferme est vendu uniquement au marché local.",
           "Les négociations entre les syndicats et la direction ont échoué.",
           "Nous avons repeint la cuisine en jaune pendant les vacances.",
           "Le chat du voisin dort toujours sur notre voiture.",
           "Cette chanson me rappelle mon premier voyage en Italie.",
           "La pharmacie de garde se trouve à côté de la mairie."],
    "es": ["El mercado de los domingos vende verduras de los pueblos cercanos.",
           "Mi vecino toca la guitarra en un grupo de rock los fines de semana.",
           "La empresa anunció que abrirá una nueva fábrica en el sur.",
           "Hace años que no visito la casa donde crecí.",
           "Los estudiantes protestaron por el aumento de las tasas universitarias.",
           "La tortuga del zoológico cumplió cien años la semana pasada.",
           "Tenemos que cambiar las ruedas del coche antes del invierno.",
           "El restaurante del puerto es famoso por su arroz con mariscos.",
           "La obra de teatro se estrenará en octubre en la capital.",
           "Compré un libro de cocina japonesa en la feria."],
    "zh": ["这家公司明年计划在海外开设三个办事处。",
           "周末我们一家人去郊外爬山，天气非常好。",
           "这部电视剧讲述了一个小镇警察的故事。",
           "新的地铁线路预计在年底前通车。",
           "他每天早上都在公园里打太极拳。",
           "这本小说的作者是一位年轻的女作家。",
           "超市里的水果最近比以前便宜了不少。",
           "学校组织学生参观了当地的历史博物馆。",
           "我的手机屏幕昨天不小心摔碎了。",
           "这座古老的寺庙每年吸引大量游客。"],
}

LANGS = ["en", "de", "fr", "es", "zh"]
WET_LANGS = {"en", "de", "zh"}


def documents(lang: str, rng: random.Random) -> list[list[str]]:
    """Planted and unrelated sentences shuffled into documents of 4-7 sentences; one sentence repeated."""
    sentences = [p[lang] for p in PLANTED] + UNRELATED[lang]
    rng.shuffle(sentences)
    planted = {p[lang] for p in PLANTED}
    sentences.append(next(x for x in sentences if x in planted))  # a paragraph repeated elsewhere, for dedup
    docs, i = [], 0
    while i < len(sentences):
        size = rng.randint(4, 7)
        docs.append(sentences[i:i + size])
        i += size
    return docs


def join_doc(lang: str, sents: list[str]) -> str:
    """Lines as paragraphs of a web page: a planted sentence is a paragraph of its own (translated pages keep
    their paragraphs), unrelated sentences next to each other share a paragraph."""
    sep = "" if lang == "zh" else " "
    planted = {p[lang] for p in PLANTED}
    lines: list[list[str]] = []
    for sentence in sents:
        if sentence in planted or not lines or lines[-1][-1] in planted:
            lines.append([sentence])
        else:
            lines[-1].append(sentence)
    return "\n".join(sep.join(line) for line in lines)


def wet_record(url: str, text: str, date: str) -> bytes:
    body = text.encode("utf-8")
    digest = "sha1:" + hashlib.sha1(body).hexdigest()
    headers = (f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: {url}\r\nWARC-Date: {date}\r\n"
               f"WARC-Record-ID: <urn:uuid:{hashlib.md5(url.encode()).hexdigest()}>\r\n"
               f"WARC-Block-Digest: {digest}\r\nContent-Type: text/plain\r\n"
               f"Content-Length: {len(body)}\r\n\r\n")
    return headers.encode("utf-8") + body + b"\r\n\r\n"


def write_wet(path: str, records: list[tuple[str, str]]) -> None:
    info = b"software: parabeam sample\r\n"
    head = (f"WARC/1.0\r\nWARC-Type: warcinfo\r\nWARC-Date: 2026-11-01T00:00:00Z\r\n"
            f"WARC-Record-ID: <urn:uuid:00000000000000000000000000000000>\r\nContent-Type: application/warc-fields\r\n"
            f"Content-Length: {len(info)}\r\n\r\n").encode() + info + b"\r\n\r\n"
    with open(path, "wb") as f:
        for chunk in [head] + [wet_record(url, text, "2026-11-01T00:00:00Z") for url, text in records]:
            f.write(gzip.compress(chunk, mtime=0))  # one gzip member per record, as CommonCrawl does


def main(out_dir: str = os.path.dirname(os.path.abspath(__file__))) -> None:
    rng = random.Random(20261121)
    wet_records: list[tuple[str, str]] = []
    json_lines = io.StringIO()
    for lang in LANGS:
        for n, sents in enumerate(documents(lang, rng)):
            url = f"https://{lang}.example.org/news/{n:03d}.html"
            text = join_doc(lang, sents)
            if lang in WET_LANGS:
                wet_records.append((url, text))
            else:
                digest = "sha1:" + hashlib.sha1(text.encode()).hexdigest()
                json_lines.write(json.dumps({"url": url, "digest": digest, "raw_content": text},
                                            ensure_ascii=False) + "\n")
    rng.shuffle(wet_records)
    write_wet(os.path.join(out_dir, "sample.warc.wet.gz"), wet_records)
    with gzip.GzipFile(os.path.join(out_dir, "sample.jsonl.gz"), "wb", mtime=0) as f:
        f.write(json_lines.getvalue().encode("utf-8"))
    with open(os.path.join(out_dir, "gold.tsv"), "w", encoding="utf-8") as f:
        f.write("src_lang\ttgt_lang\tsrc_text\ttgt_text\n")
        for i, a in enumerate(LANGS):
            for b in LANGS[i + 1:]:
                for p in PLANTED:
                    f.write(f"{a}\t{b}\t{p[a]}\t{p[b]}\n")


if __name__ == "__main__":
    main()
