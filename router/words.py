"""Words and tables the router reads: data, not logic (detection context words, name and address cues, the IBAN
registry, disguise spellings, complexity cues). ``router.detect``, ``router.normalize``, ``router.complexity`` and
``router.lexicon`` build their patterns from these; nothing here imports another router module.
"""

from __future__ import annotations

ACCOUNT_CTX = (
    "account",
    "acct",
    "a/c",
    "账号",
    "帐号",
    "账户",
    "帐户",
    "卡号",
    "card",
    "银行卡",
    "储蓄卡",
    "信用卡",
    "借记卡",
    "routing",
    "sort code",
    "收款",
    "转入",
    "转到",
    "汇到",
    "汇入",
    "customer no",
    "客户号",
)

ORDER_CTX = (
    "order",
    "订单",
    "流水",
    "reference",
    "ref",
    "tracking",
    "快递",
    "单号",
    "ticket",
    "工单",
    "case no",
    "transaction id",
    "交易号",
    "invoice",
    "发票",
    "version",
    "版本",
    "serial",
    "序列号",
    "批次",
    "合同号",
    "contract no",
    "编号",
)

PHONE_CTX = (
    "my number",
    "text",
    "call",
    "ring me",
    "dial",
    "cell",
    "mobile no",
    "phone no",
    "phone",
    "mobile",
    "tel",
    "call me",
    "reach me",
    "contact",
    "电话",
    "手机",
    "联系",
    "致电",
    "号码",
    "whatsapp",
    "wechat",
    "微信",
    "fax",
    "传真",
    "text me",
    "sms",
    "短信",
    "call back",
)

SSN_CTX = ("ssn", "social security", "social", "ss#", "ss no", "ss number", "soc sec", "社会安全号", "社安号")

ID_CTX = ("身份证", "id number", "id no", "id card", "national id", "identity card", "证件号", "身份号")

HOTLINE_PREFIXES = ("400", "800")

AT_WORDS = (" at ", "[at]", "(at)", " @ ")

IBAN_COUNTRIES = frozenset(
    [
        "AD",
        "AE",
        "AL",
        "AT",
        "AZ",
        "BA",
        "BE",
        "BG",
        "BH",
        "BI",
        "BR",
        "BY",
        "CH",
        "CR",
        "CY",
        "CZ",
        "DE",
        "DJ",
        "DK",
        "DO",
        "EE",
        "EG",
        "ES",
        "FI",
        "FK",
        "FO",
        "FR",
        "GB",
        "GE",
        "GI",
        "GL",
        "GR",
        "GT",
        "HR",
        "HU",
        "IE",
        "IL",
        "IQ",
        "IS",
        "IT",
        "JO",
        "KW",
        "KZ",
        "LB",
        "LC",
        "LI",
        "LT",
        "LU",
        "LV",
        "LY",
        "MC",
        "MD",
        "ME",
        "MK",
        "MN",
        "MR",
        "MT",
        "MU",
        "NI",
        "NL",
        "NO",
        "OM",
        "PK",
        "PL",
        "PS",
        "PT",
        "QA",
        "RO",
        "RS",
        "RU",
        "SA",
        "SC",
        "SD",
        "SE",
        "SI",
        "SK",
        "SM",
        "SO",
        "ST",
        "SV",
        "TL",
        "TN",
        "TR",
        "UA",
        "VA",
        "VG",
        "XK",
        "YE",
    ]
)

PASSPORT_CTX = (
    "passport",
    "pass port",
    "pass-port",
    "pp no",
    "pp number",
    "pp#",
    "pp:",
    "pp num",
    "travel document",
    "护照",
    "通行证",
    "旅行证件",
)

EN_NAME_CTX = (
    "my name is",
    "my name's",
    "name:",
    "name is",
    "account holder",
    "account name",
    "cardholder",
    "card holder",
    "beneficiary",
    "payee",
    "full name",
    "i am called",
    "this is mr",
    "this is ms",
)

EN_STOP = frozenset(
    [
        "not",
        "on",
        "in",
        "the",
        "a",
        "an",
        "is",
        "was",
        "missing",
        "wrong",
        "incorrect",
        "spelled",
        "misspelled",
        "different",
        "changed",
        "same",
        "also",
        "still",
        "printed",
        "showing",
        "shown",
        "correct",
        "and",
        "or",
        "but",
        "has",
        "have",
        "had",
        "on",
        "of",
        "for",
        "to",
        "with",
        "as",
        "my",
        "your",
        "it",
        "this",
        "that",
        "there",
        "here",
        "please",
        "field",
        "blank",
        "empty",
        "required",
        "what",
        "how",
        "why",
        "when",
        "where",
        "who",
        "which",
        "outdated",
        "old",
        "updated",
        "up",
    ]
)

ZH_NAME_CTX = (
    "我叫",
    "我的名字是",
    "我的名字叫",
    "名字叫",
    "本人",
    "姓名",
    "户名",
    "开户人",
    "持卡人",
    "收款人",
    "联系人",
    "我是",
)

ZH_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟"
    "谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛"
    "邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路"
    "游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全"
    "佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)

ZH_COMPOUND = ("欧阳", "司马", "诸葛", "上官", "东方", "慕容", "令狐", "皇甫", "尉迟", "长孙", "宇文", "司徒")

ZH_NAME_STOP = frozenset("的了是在想要请吗呢和与跟我你他她们说问查办把被给到从对也都就还已会能可有没不这那")

EN_ADDR_CTX = (
    "i live at",
    "i live on",
    "my address is",
    "address:",
    "address is",
    "reside at",
    "residing at",
    "ship to",
    "send it to",
    "mail it to",
    "home address",
    "mailing address",
    "moved to",
)

STREET_WORDS = (
    "street",
    "st.",
    "road",
    "rd.",
    "avenue",
    "ave.",
    "lane",
    "boulevard",
    "blvd",
    "drive",
    "court",
    "terrace",
    "crescent",
    "square",
    "parkway",
    "highway",
    "way",
    # abbreviations without a dot (US/UK shapes: "1600 Pennsylvania Ave NW", "27 Kings Rd")
    "st",
    "rd",
    "ave",
    "av",
    "ln",
    "dr",
    "ct",
    "pl",
    "pkwy",
    "hwy",
    "ter",
    "terr",
    "cres",
    "sq",
)
# Street-name endings the address pattern accepts after "<number> <Name>" (case as written), and compass suffixes.
STREET_SUFFIXES = (
    "Street", "St", "Road", "Rd", "Avenue", "Ave", "Av", "Lane", "Ln", "Boulevard", "Blvd", "Drive", "Dr", "Court",
    "Ct", "Way", "Place", "Pl", "Terrace", "Terr", "Ter", "Crescent", "Cres", "Close", "Square", "Sq", "Parkway",
    "Pkwy", "Highway", "Hwy", "Row", "Mews", "Gardens", "Grove", "Hill", "Park",
)  # fmt: skip
COMPASS = ("NW", "NE", "SW", "SE", "N", "S", "E", "W")
# Titles before a name ("I'm Dr. Alvarez"), and self-introductions that need a capitalised first and last name.
NAME_TITLES = ("mr", "mrs", "ms", "miss", "mx", "dr", "prof")
SELF_INTRO = ("i'm", "i am", "this is")

ZH_ADDR_CTX = ("住在", "住址", "地址", "家住", "寄到", "送到", "居住在", "现居", "户籍", "邮寄地址", "收货地址")
ZH_STREET_WORDS = ("路", "街", "大道", "巷", "胡同", "弄")
ZH_REGION_WORDS = ("省", "市")
ZH_ROOM_WORDS = ("室", "单元", "栋", "幢", "号楼")

ZH_ADDR_SHAPE_CHARS = "省市区县路街道号楼室村镇弄巷栋幢单元"

DOB_CTX = (
    "date of birth",
    "dob",
    "d.o.b",
    "born on",
    "born in",
    "birthday",
    "birth date",
    "birthdate",
    "出生日期",
    "生日",
    "出生于",
    "出生年月",
    "出生在",
)

COMPLEXITY_EN = {
    "reasoning": (
        "derive",
        "derivation",
        "prove",
        "proof",
        "analy",
        "compare",
        "comparison",
        "evaluat",
        "simulat",
        "calculat",
        "estimat",
        "optimi",
        "justify",
        "argue",
        "argument",
        "trade-off",
        "tradeoff",
        "step by step",
        "what if",
        "scenario",
        "forecast",
        "model",
        "strategy",
        "pros and cons",
        "sensitivity",
        "regression",
        "monte carlo",
        "amortiz",
        "amortis",
        "compound",
        "npv",
        "irr",
        "portfolio",
        "hedg",
        "assess",
        "reconcil",
        "explain why",
        "recommend",
        "break down",
        "breakdown",
        "implication",
        "impact",
        "quantif",
        "stress test",
        "backtest",
        "risk-adjusted",
        "variance",
        "correlation",
        "projection",
        "draft a",
        "write a report",
        "summari",
        "design",
        "build a",
        "build an",
        "schedule",
        "query",
        "difference",
        "write a",
        "write an",
        "break-even",
        "for and against",
        "show the math",
        "show your",
        "percentile",
    ),
    "code": ("```", "def ", "select ", "function", "import ", "class ", "sql", "python", "regex", "json", "script"),
    "simple": (
        "what is",
        "what are",
        "what's",
        "how do i",
        "how can i",
        "where is",
        "where can",
        "when does",
        "when is",
        "opening hours",
        "open on",
        "reset",
        "password",
        "thank",
        "hello",
        "hi ",
        "could you tell me",
        "can i",
        "is it possible",
        "how much is",
        "how long",
        "lost my",
        "block my",
        "activate",
    ),
}

COMPLEXITY_ZH = {
    "reasoning": (
        "推导",
        "证明",
        "分析",
        "比较",
        "对比",
        "评估",
        "模拟",
        "计算",
        "测算",
        "估算",
        "优化",
        "论证",
        "为什么",
        "利弊",
        "方案",
        "预测",
        "假设",
        "逐步",
        "权衡",
        "敏感性",
        "蒙特卡洛",
        "回归",
        "资产配置",
        "策略",
        "规划",
        "建模",
        "量化",
        "推演",
        "情景",
        "压力测试",
        "影响",
        "拆解",
        "归因",
        "总结",
        "撰写",
        "起草",
        "报告",
        "风险",
        "建立",
        "模型",
        "盈亏平衡",
        "说明如何",
        "写一段",
        "设计",
        "变化",
    ),
    "code": ("代码", "脚本", "函数", "正则"),
    "simple": (
        "怎么",
        "如何办理",
        "在哪",
        "营业时间",
        "几点",
        "多少钱",
        "是什么",
        "请问",
        "谢谢",
        "你好",
        "能不能",
        "可以吗",
        "挂失",
        "重置",
        "密码",
        "开通",
        "查询",
    ),
}

WIDE_MATH = ("×", "÷", "√", "∑", "∫")


# ---------------------------------------------------------------- disguises (router.normalize)
# English number words and their digits; "double"/"triple" repeat the next digit ("double five" -> 55).
NUMBER_WORDS = {
    "zero": "0", "oh": "0", "nought": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
REPEAT_WORDS = {"double": 2, "triple": 3}
# Chinese digits, everyday and financial (大写) forms, 〇/零, and 幺 (1 read out in phone numbers), 两 (2).
ZH_DIGITS = {
    "〇": "0", "零": "0", "一": "1", "幺": "1", "壹": "1", "弌": "1", "二": "2", "两": "2", "贰": "2", "貳": "2",
    "弍": "2", "三": "3", "叁": "3", "參": "3", "弎": "3", "四": "4", "肆": "4", "五": "5", "伍": "5", "六": "6",
    "陆": "6", "陸": "6", "七": "7", "柒": "7", "八": "8", "捌": "8", "九": "9", "玖": "9",
}  # fmt: skip
# Spelled "@" and "." in e-mail addresses, English and Chinese ("zhang at qq dot com", "zhang艾特qq点com").
AT_SPELLINGS = ("at", "[at]", "(at)", "{at}", "<at>", "@", "艾特", "圈a")
DOT_SPELLINGS = ("dot", "[dot]", "(dot)", "{dot}", "<dot>", ".", "点", "。")
EMAIL_TLDS = (
    "com", "net", "org", "edu", "gov", "cn", "io", "co", "uk", "hk", "info", "biz", "me", "us", "de", "sg", "fr", "jp",
    "tw", "au", "ca", "in", "mil", "int", "eu", "ch", "nl", "ru", "it", "es", "mo", "top", "xyz",
)  # fmt: skip

# ---------------------------------------------------------------- look-alikes
# A date (YYYYMMDD) may start a timestamp of this many digits (hhmm, hhmmss, hhmmssfff) and still be a look-alike.
TIMESTAMP_LENGTHS = (8, 12, 14, 17)
LONG_RUN_DIGITS = 12  # a digit run this long that is no known look-alike is treated as an account number

# ---------------------------------------------------------------- finding types (stable strings: logs, headers, reports)
CARD = "card"
BANK_ACCOUNT = "bank_account"
CN_ID = "cn_id"
PHONE = "phone"
EMAIL = "email"
IBAN = "iban"
SSN = "ssn"
PASSPORT = "passport"
NAME = "name"
ADDRESS = "address"
DOB = "dob"
KEYWORD = "keyword"
TYPES = (CARD, BANK_ACCOUNT, CN_ID, PHONE, EMAIL, IBAN, SSN, PASSPORT, NAME, ADDRESS, DOB)

# ---------------------------------------------------------------- trigger words: what detection checks at each hit
# English (found on the lower-case view as whole words) -> family; Chinese (found on the text) -> family.
EN_TRIGGERS: dict[str, str] = (
    {w: NAME for w in EN_NAME_CTX}
    | {w: ADDRESS for w in EN_ADDR_CTX}
    | {w: DOB for w in DOB_CTX if w.isascii()}
    | {w: PASSPORT for w in PASSPORT_CTX if w.isascii()}
    | {w: "street" for w in STREET_WORDS}
    | {"iban": IBAN}
    | {w: "title" for w in NAME_TITLES}
    | {w: "intro" for w in SELF_INTRO}
    | {w: "spelled" for w in ("[at]", "(at)", "{at}", "<at>", "[dot]", "(dot)")}
)
# Words whose presence (as whole words) is enough to know: disguise cues the normaliser then looks at itself.
PRESENCE_WORDS = (*NUMBER_WORDS, *REPEAT_WORDS, "at", "dot")
ZH_TRIGGERS: dict[str, str] = (
    {w: NAME for w in ZH_NAME_CTX}
    | {w: ADDRESS for w in ZH_ADDR_CTX}
    | {w: DOB for w in DOB_CTX if not w.isascii()}
    | {w: PASSPORT for w in PASSPORT_CTX if not w.isascii()}
    | {w: "zh_street" for w in ZH_STREET_WORDS}
    | {w: "zh_region" for w in ZH_REGION_WORDS}
    | {w: "zh_room" for w in ZH_ROOM_WORDS}
    | {w: "spelled" for w in ("艾特", "圈a")}
)
DETECT_EN_WORDS = tuple(EN_TRIGGERS)  # located: every occurrence is reported
DETECT_OTHER_WORDS = tuple(ZH_TRIGGERS)

# ---------------------------------------------------------------- complexity cue tables, flattened
COMPLEXITY_EN_KIND = {w: k for k, ws in COMPLEXITY_EN.items() for w in ws}
COMPLEXITY_ZH_KIND = {w: k for k, ws in COMPLEXITY_ZH.items() for w in ws}
COMPLEXITY_EN_WORDS = tuple(COMPLEXITY_EN_KIND)
COMPLEXITY_EN_STEMS = tuple(w for w in COMPLEXITY_EN_WORDS if w.isalpha())  # "analy" also finds analysis, ...
COMPLEXITY_OTHER_WORDS = (*COMPLEXITY_ZH_KIND, *WIDE_MATH)
