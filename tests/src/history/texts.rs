//! What people say in the generated history: the FAQ the bot answers from, and the templates
//! customers, the bot and agents speak in, in Chinese and English.
//!
//! Templates carry slots (`{order}`, `{product}`, `{days}`, `{amount}`, `{agent}`) that the
//! simulator fills in, so the same sentence comes out with different orders and products, the
//! way real transcripts repeat themselves with different details.

/// The help desk's two languages: customers with a `zh-*` locale write Chinese, `en-*` English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Lang {
    Zh,
    En,
}

/// A sentence in both languages.
pub(crate) type Bi = (&'static str, &'static str);

pub(crate) fn pick_lang(text: &Bi, lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => text.0,
        Lang::En => text.1,
    }
}

// ---- the shop's FAQ ----

/// The FAQ categories the knowledge base is organised in, which are also the service
/// categories the self-operated queues are split by.
pub(crate) const SERVICE_CATEGORIES: [&str; 9] = [
    "shipping", "delays", "returns", "refunds", "invoices", "payment", "coupons", "account",
    "warranty",
];

/// One FAQ topic. Each becomes four knowledge entries: Chinese and English, for self-operated
/// and for merchant (POP) orders, because the after-sales policy differs by seller.
pub(crate) struct Topic {
    pub category: &'static str,
    /// The scenario this topic answers best, if it is that specific.
    pub scenario: Option<&'static str>,
    pub question: Bi,
    pub paraphrases: [Bi; 2],
    pub answer: Bi,
}

/// Appended to a topic's answer in the entry for self-operated orders.
pub(crate) const SELF_OPERATED_NOTE: Bi = (
    "本商品由京东自营提供售后服务，如有疑问可随时联系在线客服。",
    "This item is sold and serviced by JD self-operated retail; contact online service any time.",
);
/// Appended to a topic's answer in the entry for merchant orders.
pub(crate) const MERCHANT_NOTE: Bi = (
    "第三方商家商品由商家负责售后；如商家48小时内未处理，您可以申请京东客服介入。",
    "Merchant (POP) items are serviced by the merchant; if the merchant has not acted within 48 hours you can ask JD customer service to step in.",
);
pub(crate) const SELF_OPERATED_TAG: Bi = ("（自营商品）", " (self-operated items)");
pub(crate) const MERCHANT_TAG: Bi = ("（第三方商家商品）", " (merchant items)");

macro_rules! topic {
    ($cat:literal, $scenario:expr, ($qz:literal, $qe:literal), [($p1z:literal, $p1e:literal), ($p2z:literal, $p2e:literal)], ($az:literal, $ae:literal)) => {
        Topic {
            category: $cat,
            scenario: $scenario,
            question: ($qz, $qe),
            paraphrases: [($p1z, $p1e), ($p2z, $p2e)],
            answer: ($az, $ae),
        }
    };
}

pub(crate) const TOPICS: &[Topic] = &[
    // shipping
    topic!(
        "shipping",
        Some("where-is-my-parcel"),
        ("怎么查询我的快递到哪了？", "How do I track my parcel?"),
        [
            ("我的包裹到哪里了", "Where is my package?"),
            ("物流信息在哪里看", "Where can I see the delivery status?")
        ],
        (
            "您可以在“我的订单”中点击对应订单，进入“订单详情-物流信息”查看实时配送进度；京东物流配送的订单还可以查看配送员位置和联系电话。",
            "Open My Orders, tap the order and go to Order details > Tracking for live progress. For JD Logistics deliveries you can also see the courier's location and phone number."
        )
    ),
    topic!(
        "shipping",
        Some("change-address"),
        (
            "下单后可以修改收货地址吗？",
            "Can I change the delivery address after ordering?"
        ),
        [
            ("地址填错了怎么改", "I entered the wrong address"),
            (
                "怎么修改订单的收货信息",
                "How do I edit the shipping details of an order?"
            )
        ],
        (
            "订单出库前，您可以在“订单详情”点击“修改地址”；已出库的订单请联系配送员或在线客服协助转寄，转寄可能产生额外运费。",
            "Before the order leaves the warehouse, tap Change address in Order details. Once shipped, contact the courier or online service to redirect it; redirection may cost extra."
        )
    ),
    topic!(
        "shipping",
        Some("where-is-my-parcel"),
        (
            "订单显示已签收但我没收到怎么办？",
            "The order says delivered but I did not get it"
        ),
        [
            (
                "显示签收了可是没收到货",
                "Marked as delivered but nothing arrived"
            ),
            ("快递被别人签收了", "Someone else signed for my parcel")
        ],
        (
            "请先确认是否由家人、前台或快递柜代收；如仍未找到，请在签收后48小时内联系客服，我们会联系配送站核实。",
            "Please check with family, reception or the parcel locker first. If it is still missing, contact us within 48 hours of the delivery scan and we will check with the delivery station."
        )
    ),
    topic!(
        "shipping",
        None,
        ("可以指定送货时间吗？", "Can I choose a delivery time?"),
        [
            ("能不能晚上送货", "Can you deliver in the evening?"),
            ("预约配送怎么选", "How do I book a delivery slot?")
        ],
        (
            "京东物流支持预约配送：在结算页选择“指定时间”即可；部分大件商品支持预约送装一体。",
            "JD Logistics offers scheduled delivery: choose a time slot at checkout. Some large items can be delivered and installed in one visit."
        )
    ),
    topic!(
        "shipping",
        None,
        ("运费是怎么计算的？", "How is the shipping fee calculated?"),
        [
            ("包邮的条件是什么", "When is shipping free?"),
            ("为什么要收运费", "Why was I charged for shipping?")
        ],
        (
            "自营商品订单满59元免基础运费，PLUS会员每月享免运费券；偏远地区和大件商品可能另收运费，以结算页为准。",
            "Self-operated orders over CNY 59 ship free; PLUS members get monthly free-shipping coupons. Remote areas and bulky items may cost extra; checkout shows the final fee."
        )
    ),
    topic!(
        "shipping",
        Some("where-is-my-parcel"),
        ("联系不上快递员怎么办？", "I cannot reach the courier"),
        [
            ("快递员电话打不通", "The courier does not answer the phone"),
            ("配送员一直不接电话", "The delivery person never picks up")
        ],
        (
            "您可以在物流详情中点击“联系配送站”，或由在线客服帮您催促配送站安排派送。",
            "Tap Contact delivery station in the tracking page, or ask online service to chase the station for you."
        )
    ),
    // delays
    topic!(
        "delays",
        Some("delivery-delayed"),
        ("为什么我的快递这么久还没到？", "Why is my delivery late?"),
        [
            ("物流好几天没更新了", "Tracking has not updated for days"),
            (
                "配送延迟了怎么办",
                "What can I do about a delayed delivery?"
            )
        ],
        (
            "配送延迟可能由天气、交通管制或大促期间包裹量大导致；物流信息超过48小时未更新时，客服可为您联系承运商核实。",
            "Delays can come from weather, traffic control or peak-season volumes. If tracking has not moved for 48 hours, customer service can check with the carrier for you."
        )
    ),
    topic!(
        "delays",
        Some("urge-shipment"),
        ("怎么催促发货？", "How do I ask you to ship faster?"),
        [
            (
                "下单很久了还没发货",
                "I ordered long ago and it has not shipped"
            ),
            ("能不能快点发货", "Can you ship my order sooner?")
        ],
        (
            "自营商品一般在下单后24小时内出库；您可以在订单详情点击“催发货”，系统会提醒仓库优先处理。",
            "Self-operated items usually leave the warehouse within 24 hours. Tap Urge shipment in Order details and the warehouse will be reminded to prioritise it."
        )
    ),
    topic!(
        "delays",
        Some("urge-shipment"),
        ("预售商品什么时候发货？", "When do pre-sale items ship?"),
        [
            ("预售的东西多久能发", "How long until a pre-order ships?"),
            (
                "定金付了什么时候发货",
                "I paid the deposit, when will it ship?"
            )
        ],
        (
            "预售商品按商品页标注的发货时间发出，支付尾款后一般3-7天内发货。",
            "Pre-sale items ship on the date shown on the product page, usually 3 to 7 days after the balance is paid."
        )
    ),
    topic!(
        "delays",
        Some("delivery-delayed"),
        (
            "恶劣天气会影响配送吗？",
            "Does bad weather delay deliveries?"
        ),
        [
            ("下大雪快递还送吗", "Do you still deliver in heavy snow?"),
            (
                "台风天什么时候能送到",
                "When will it arrive during the typhoon?"
            )
        ],
        (
            "遇到恶劣天气，部分地区配送会顺延，物流恢复后将尽快为您派送，请留意短信通知。",
            "In severe weather some areas are delivered later; we deliver as soon as routes reopen and will notify you by SMS."
        )
    ),
    topic!(
        "delays",
        Some("delivery-delayed"),
        (
            "超时未送达有补偿吗？",
            "Do I get compensation for a late delivery?"
        ),
        [
            ("承诺的时间没送到", "It did not arrive when promised"),
            ("211限时达超时了", "My guaranteed-time delivery was late")
        ],
        (
            "参与“211限时达”等时效承诺的订单超时送达，可在订单详情申请超时赔付，京豆或优惠券将在审核后发放。",
            "Orders with a delivery-time guarantee that arrive late can claim compensation in Order details; JD beans or a coupon are issued after review."
        )
    ),
    topic!(
        "delays",
        Some("urge-shipment"),
        (
            "大促期间发货会延迟吗？",
            "Will shipping be slower during the sales festival?"
        ),
        [
            ("618期间多久发货", "How long does shipping take during 618?"),
            ("双十一会不会很慢", "Will it be slow around Singles' Day?")
        ],
        (
            "大促期间订单量较大，发货时效可能延长1-3天，京东物流会优先保障时效承诺订单。",
            "During big sales, shipping may take 1 to 3 extra days; JD Logistics prioritises orders with a delivery promise."
        )
    ),
    // returns
    topic!(
        "returns",
        Some("return-request"),
        ("如何申请退货？", "How do I return an item?"),
        [
            (
                "东西不想要了怎么退",
                "I don't want it any more, how do I send it back?"
            ),
            ("退货流程是什么", "What is the return process?")
        ],
        (
            "进入“我的订单-申请售后”，选择商品和退货原因并提交，审核通过后可选择上门取件或自行寄回。",
            "Go to My Orders > After-sales service, choose the item and the reason, and submit. Once approved, choose a courier pickup or send it back yourself."
        )
    ),
    topic!(
        "returns",
        Some("return-pickup"),
        (
            "退货可以上门取件吗？",
            "Can you pick up my return from home?"
        ),
        [
            ("退货需要自己寄吗", "Do I have to post the return myself?"),
            ("怎么预约取件", "How do I book a pickup?")
        ],
        (
            "京东物流支持上门取件：售后申请通过后选择“上门取件”并预约时间即可，取件员会按时上门。",
            "JD Logistics can collect returns: after approval choose Pickup and book a time, and the courier will come by."
        )
    ),
    topic!(
        "returns",
        Some("return-request"),
        (
            "七天无理由退货有什么条件？",
            "What are the conditions for a 7-day no-reason return?"
        ),
        [
            (
                "什么商品不支持无理由退货",
                "Which items cannot be returned without a reason?"
            ),
            ("拆封了还能退吗", "Can I return an opened item?")
        ],
        (
            "签收后7天内，商品完好、配件齐全且不影响二次销售的，可申请七天无理由退货；定制、生鲜及已激活的数码产品等除外。",
            "Within 7 days of delivery, items that are intact and complete can be returned without a reason. Custom-made goods, fresh food and activated electronics are excluded."
        )
    ),
    topic!(
        "returns",
        Some("return-request"),
        ("退货运费谁来承担？", "Who pays the return shipping?"),
        [
            ("退货要自己付运费吗", "Do I pay for return shipping?"),
            ("运费险怎么用", "How does return-shipping insurance work?")
        ],
        (
            "商品质量问题的退货运费由京东或商家承担；无理由退货由您承担，已购买运费险的订单会自动理赔。",
            "For faulty items JD or the merchant pays return shipping. For no-reason returns you pay, unless the order has return-shipping insurance, which pays out automatically."
        )
    ),
    topic!(
        "returns",
        Some("return-request"),
        ("退货申请被驳回了怎么办？", "My return request was rejected"),
        [
            (
                "售后申请审核不通过",
                "My after-sales request was not approved"
            ),
            ("为什么不给我退货", "Why was my return refused?")
        ],
        (
            "您可以在售后详情查看驳回原因，补充照片或说明后重新提交；如有异议可联系客服申诉。",
            "See the reason in the after-sales details, add photos or an explanation and submit again. If you disagree, contact customer service to appeal."
        )
    ),
    topic!(
        "returns",
        Some("return-pickup"),
        (
            "取件员没有按时来取件怎么办？",
            "The courier did not come to collect my return"
        ),
        [
            ("预约了取件没人来", "I booked a pickup but nobody came"),
            ("取件时间能改吗", "Can I change the pickup time?")
        ],
        (
            "您可以在售后详情中修改取件时间，或联系客服为您重新安排取件。",
            "You can change the pickup time in the after-sales details, or ask customer service to rebook it."
        )
    ),
    // refunds
    topic!(
        "refunds",
        Some("refund-progress"),
        ("退款多久能到账？", "How long does a refund take?"),
        [
            ("钱什么时候退回来", "When will I get my money back?"),
            ("退款到账时间", "Refund arrival time")
        ],
        (
            "退款审核通过后，京东白条、余额即时到账；微信和银行卡一般1-7个工作日到账，以银行处理为准。",
            "After approval, refunds to JD Baitiao or balance are instant; WeChat Pay and bank cards usually take 1 to 7 working days, depending on the bank."
        )
    ),
    topic!(
        "refunds",
        Some("refund-not-received"),
        (
            "显示退款成功但没收到钱怎么办？",
            "It says refunded but I have not received the money"
        ),
        [
            ("退款成功了钱没到", "Refund successful but no money"),
            ("银行卡没看到退款", "I cannot see the refund on my card")
        ],
        (
            "退款成功表示京东已退出款项，银行入账可能有延迟；超过7个工作日未到账，请提供银行流水，客服将为您核查。",
            "Refund successful means JD has sent the money; banks can take a few days to post it. If it has not arrived after 7 working days, send us your bank statement and we will investigate."
        )
    ),
    topic!(
        "refunds",
        Some("refund-progress"),
        ("退款会退到哪里？", "Where does my refund go?"),
        [
            (
                "退款退回原支付方式吗",
                "Is the refund sent back to the original payment method?"
            ),
            ("能退到余额吗", "Can the refund go to my balance?")
        ],
        (
            "退款原路退回您的支付账户；使用优惠券或京豆抵扣的部分按规则退回。",
            "Refunds go back to the original payment method; coupons and JD beans used are returned according to their rules."
        )
    ),
    topic!(
        "refunds",
        Some("refund-progress"),
        ("如何查看退款进度？", "How do I check my refund status?"),
        [
            ("退款到哪一步了", "Where is my refund now?"),
            ("退款进度在哪看", "Where can I see refund progress?")
        ],
        (
            "进入“我的-客户服务-退款/售后”，点击对应售后单即可查看退款进度。",
            "Go to Me > Customer service > Refunds/After-sales and open the request to see its progress."
        )
    ),
    topic!(
        "refunds",
        None,
        (
            "部分退款是怎么计算的？",
            "How is a partial refund calculated?"
        ),
        [
            (
                "为什么只退了一部分钱",
                "Why did I only get part of my money back?"
            ),
            ("优惠分摊怎么算", "How are discounts split across items?")
        ],
        (
            "订单享受的满减和优惠券按商品金额比例分摊，部分退货时按实付金额退款。",
            "Order-level discounts and coupons are split across items in proportion to their price, and a partial return refunds what you actually paid for those items."
        )
    ),
    topic!(
        "refunds",
        Some("refund-progress"),
        (
            "取消订单后多久退款？",
            "When is the money returned after I cancel an order?"
        ),
        [
            (
                "取消订单钱怎么退",
                "How is the money returned for a cancelled order?"
            ),
            ("订单取消了还没退款", "I cancelled but have no refund yet")
        ],
        (
            "未出库订单取消后立即发起退款，原路退回；已出库订单需拒收或退货后退款。",
            "Cancelling before shipment refunds immediately to the original payment method; once shipped, the refund follows the refusal or return."
        )
    ),
    // invoices
    topic!(
        "invoices",
        Some("invoice-request"),
        ("怎么开发票？", "How do I get an invoice?"),
        [
            ("发票怎么申请", "How do I request an invoice?"),
            (
                "下单忘记开发票了",
                "I forgot to ask for an invoice when ordering"
            )
        ],
        (
            "下单时可在结算页选择发票类型和抬头；已完成的订单可在“订单详情-发票”申请补开。",
            "Choose the invoice type and title at checkout; for completed orders, request one under Order details > Invoice."
        )
    ),
    topic!(
        "invoices",
        Some("invoice-correction"),
        (
            "发票抬头开错了怎么修改？",
            "The invoice title is wrong, how do I change it?"
        ),
        [
            ("发票信息填错了", "I entered the wrong invoice details"),
            ("换开发票怎么操作", "How do I get the invoice reissued?")
        ],
        (
            "电子发票开具后可在“订单详情-发票-换开”修改抬头或税号，每个订单可换开一次。",
            "After an e-invoice is issued you can change the title or tax number under Order details > Invoice > Reissue, once per order."
        )
    ),
    topic!(
        "invoices",
        Some("invoice-request"),
        ("电子发票在哪里下载？", "Where can I download my e-invoice?"),
        [
            ("发票怎么下载", "How do I download the invoice?"),
            ("电子发票发到邮箱吗", "Is the e-invoice e-mailed to me?")
        ],
        (
            "电子发票在订单完成后自动开具，可在“订单详情-查看发票”下载，也可发送到您的邮箱。",
            "E-invoices are issued automatically when the order completes; download them from Order details > View invoice or have them e-mailed."
        )
    ),
    topic!(
        "invoices",
        Some("invoice-request"),
        (
            "可以开增值税专用发票吗？",
            "Can I get a VAT special invoice?"
        ),
        [
            ("公司报销要专票", "My company needs a special VAT invoice"),
            ("专票怎么申请", "How do I apply for a VAT special invoice?")
        ],
        (
            "企业用户提交增票资质审核通过后，可在结算页选择增值税专用发票。",
            "Business customers can choose a VAT special invoice at checkout after their VAT details have been approved."
        )
    ),
    topic!(
        "invoices",
        Some("invoice-request"),
        ("发票可以补开吗？", "Can an invoice be issued later?"),
        [
            (
                "几个月前的订单能开发票吗",
                "Can I get an invoice for an order from months ago?"
            ),
            ("补开发票期限", "How long can I wait to request an invoice?")
        ],
        (
            "订单完成后一年内可申请补开发票，请在“订单详情-发票”提交申请。",
            "You can request an invoice up to one year after the order completes, under Order details > Invoice."
        )
    ),
    topic!(
        "invoices",
        Some("invoice-correction"),
        (
            "退货后发票怎么处理？",
            "What happens to the invoice after a return?"
        ),
        [
            (
                "退货了发票要退回吗",
                "Do I need to send back the invoice when returning?"
            ),
            (
                "部分退货发票怎么办",
                "What about the invoice for a partial return?"
            )
        ],
        (
            "电子发票在退货完成后自动冲红；纸质发票需随商品一并寄回，部分退货将为剩余商品重新开票。",
            "E-invoices are reversed automatically when the return completes. Paper invoices must be sent back with the item; for partial returns a new invoice is issued for what you keep."
        )
    ),
    // payment
    topic!(
        "payment",
        Some("payment-failed"),
        ("付款失败怎么办？", "My payment failed"),
        [
            ("支付不成功", "The payment did not go through"),
            ("付不了款", "I cannot pay")
        ],
        (
            "请检查银行卡余额和单笔限额，或更换支付方式后重试；订单会为您保留24小时。",
            "Please check your card balance and single-payment limit, or try another payment method. The order is held for 24 hours."
        )
    ),
    topic!(
        "payment",
        Some("double-charge"),
        ("重复扣款了怎么办？", "I was charged twice"),
        [
            ("扣了两次钱", "The money was taken twice"),
            ("一个订单付了两次款", "I paid twice for one order")
        ],
        (
            "重复支付的款项会在1-3个工作日内自动原路退回；超过时间未退回请联系客服并提供支付凭证。",
            "Duplicate payments are refunded automatically to the original method within 1 to 3 working days. If not, contact us with the payment receipt."
        )
    ),
    topic!(
        "payment",
        Some("payment-failed"),
        ("支持哪些支付方式？", "Which payment methods are accepted?"),
        [
            ("可以用信用卡吗", "Can I pay by credit card?"),
            ("能用微信支付吗", "Can I use WeChat Pay?")
        ],
        (
            "支持京东支付、白条、微信支付、银联云闪付及主流银行卡，部分商品支持货到付款。",
            "We accept JD Pay, Baitiao, WeChat Pay, UnionPay QuickPass and major bank cards; some items allow cash on delivery."
        )
    ),
    topic!(
        "payment",
        None,
        (
            "白条分期怎么开通？",
            "How do I activate Baitiao instalments?"
        ),
        [
            ("怎么用白条付款", "How do I pay with Baitiao?"),
            ("分期手续费多少", "What is the instalment fee?")
        ],
        (
            "在“我的-京东白条”完成实名认证即可开通，分期费率以结算页展示为准。",
            "Complete identity verification under Me > JD Baitiao to activate it; the instalment rate is shown at checkout."
        )
    ),
    topic!(
        "payment",
        Some("double-charge"),
        (
            "付款后订单还显示待支付？",
            "I paid but the order still says awaiting payment"
        ),
        [
            (
                "钱扣了订单没变",
                "The money is gone but the order did not change"
            ),
            (
                "支付成功订单没更新",
                "Payment succeeded but the order was not updated"
            )
        ],
        (
            "支付结果同步可能有几分钟延迟，请稍后刷新；若订单最终取消，已扣款项将原路退回。",
            "Payment results can take a few minutes to sync, please refresh later. If the order ends up cancelled, the money is refunded to the original method."
        )
    ),
    topic!(
        "payment",
        None,
        ("支持货到付款吗？", "Is cash on delivery available?"),
        [
            ("可以收货再付钱吗", "Can I pay when the parcel arrives?"),
            ("货到付款怎么选", "How do I choose cash on delivery?")
        ],
        (
            "京东物流配送的部分商品支持货到付款，可在结算页“支付方式”中选择。",
            "Some items delivered by JD Logistics allow cash on delivery; choose it under Payment method at checkout."
        )
    ),
    // coupons
    topic!(
        "coupons",
        Some("coupon-not-applied"),
        ("优惠券为什么用不了？", "Why can't I use my coupon?"),
        [
            ("优惠券显示不可用", "The coupon says not applicable"),
            ("结算时没有减钱", "The discount was not applied at checkout")
        ],
        (
            "请确认优惠券的使用范围、门槛金额和有效期；部分特价商品不参与用券。",
            "Please check the coupon's eligible items, minimum spend and validity; some discounted items are excluded."
        )
    ),
    topic!(
        "coupons",
        Some("price-protection"),
        (
            "买贵了可以申请价格保护吗？",
            "Can I get a refund of the price difference?"
        ),
        [
            ("刚买就降价了", "The price dropped right after I bought it"),
            ("价保怎么申请", "How do I apply for price protection?")
        ],
        (
            "支持价保的商品在签收后规定天数内降价，可在“我的-价格保护”一键申请，差价退回原支付方式。",
            "If an item with price protection gets cheaper within the protection period, apply under Me > Price protection and the difference is refunded."
        )
    ),
    topic!(
        "coupons",
        Some("coupon-not-applied"),
        (
            "优惠券过期了还能用吗？",
            "Can I still use an expired coupon?"
        ),
        [
            ("券过期了能延期吗", "Can an expired coupon be extended?"),
            ("优惠券有效期多久", "How long is a coupon valid?")
        ],
        (
            "过期优惠券无法使用或延期，请留意优惠券页面的有效期提醒。",
            "Expired coupons cannot be used or extended; watch the expiry reminders on the coupon page."
        )
    ),
    topic!(
        "coupons",
        Some("coupon-not-applied"),
        ("满减活动怎么计算？", "How do spend-and-save offers work?"),
        [
            ("满300减50怎么算", "How is 50 off 300 calculated?"),
            ("跨店满减怎么用", "How does the cross-store discount work?")
        ],
        (
            "满减按参与活动商品的实付金额计算，跨店满减需商品均参与同一活动。",
            "Spend-and-save is calculated on what you pay for participating items; cross-store offers need all items in the same campaign."
        )
    ),
    topic!(
        "coupons",
        Some("price-protection"),
        (
            "价保申请的条件是什么？",
            "What are the price-protection conditions?"
        ),
        [
            ("哪些商品可以价保", "Which items have price protection?"),
            (
                "价保期限是几天",
                "How many days does price protection last?"
            )
        ],
        (
            "自营商品一般享受签收后7天价保，以商品页标识为准；秒杀、拼购等特殊价格不参与价保。",
            "Self-operated items usually have 7 days of price protection after delivery, as marked on the product page; flash sales and group buys are excluded."
        )
    ),
    topic!(
        "coupons",
        Some("coupon-not-applied"),
        (
            "退货后优惠券会退回吗？",
            "Do I get my coupon back after a return?"
        ),
        [
            (
                "退货了券还能用吗",
                "Can I reuse the coupon after returning?"
            ),
            (
                "用了券退货怎么退钱",
                "How is a return refunded when I used a coupon?"
            )
        ],
        (
            "整单退货且优惠券在有效期内的，优惠券将退回您的账户；部分退货时优惠券不退回。",
            "If the whole order is returned and the coupon is still valid, it goes back to your account; for partial returns it is not returned."
        )
    ),
    // account
    topic!(
        "account",
        Some("login-problem"),
        ("账号登录不了怎么办？", "I cannot log in to my account"),
        [
            ("登录一直失败", "Login keeps failing"),
            ("提示账号异常", "It says my account is abnormal")
        ],
        (
            "请尝试使用短信验证码登录或重置密码；如提示账号异常，请按页面提示完成安全验证。",
            "Try logging in with an SMS code or reset your password. If it says the account is abnormal, complete the security check shown."
        )
    ),
    topic!(
        "account",
        Some("change-phone"),
        (
            "如何更换绑定手机号？",
            "How do I change my linked phone number?"
        ),
        [
            ("手机号换了怎么办", "I have a new phone number"),
            ("原手机号不用了", "I no longer use my old number")
        ],
        (
            "进入“账户设置-账户安全-手机号”，通过原手机号或身份验证后即可更换绑定。",
            "Go to Account settings > Security > Phone number and verify with the old number or your ID to change it."
        )
    ),
    topic!(
        "account",
        Some("login-problem"),
        ("忘记密码怎么找回？", "I forgot my password"),
        [
            ("密码想不起来了", "I can't remember my password"),
            ("怎么重置密码", "How do I reset my password?")
        ],
        (
            "在登录页点击“忘记密码”，通过绑定手机号验证后即可设置新密码。",
            "Tap Forgot password on the login page and verify with your linked phone to set a new password."
        )
    ),
    topic!(
        "account",
        Some("login-problem"),
        ("账号被冻结了怎么办？", "My account has been frozen"),
        [
            ("账户被锁定了", "My account is locked"),
            ("为什么账号不能用了", "Why can't I use my account?")
        ],
        (
            "账号可能因安全风险被临时冻结，请按页面提示完成身份验证，或联系客服申请解冻。",
            "Accounts can be frozen temporarily for security reasons. Complete identity verification as prompted, or contact customer service to unfreeze it."
        )
    ),
    topic!(
        "account",
        Some("change-phone"),
        ("如何注销账号？", "How do I close my account?"),
        [
            ("不想用了怎么注销", "I want to delete my account"),
            (
                "注销账号有什么影响",
                "What happens when I close my account?"
            )
        ],
        (
            "在“账户设置-账户安全-注销账户”提交申请；注销后订单、余额和权益将无法恢复。",
            "Apply under Account settings > Security > Close account. Orders, balance and benefits cannot be recovered afterwards."
        )
    ),
    topic!(
        "account",
        Some("login-problem"),
        (
            "收不到验证码怎么办？",
            "I don't receive the verification code"
        ),
        [
            ("短信验证码没收到", "The SMS code never arrives"),
            ("验证码一直不来", "The code keeps not coming")
        ],
        (
            "请检查手机是否拦截了短信，稍等60秒后重新获取；也可以选择语音验证码。",
            "Check whether your phone blocks the SMS, wait 60 seconds and request again, or choose a voice code."
        )
    ),
    // warranty
    topic!(
        "warranty",
        Some("warranty-repair"),
        (
            "商品坏了怎么申请保修？",
            "How do I get a broken item repaired under warranty?"
        ),
        [
            ("东西坏了能修吗", "Can my broken item be repaired?"),
            ("保修怎么申请", "How do I claim warranty?")
        ],
        (
            "在“我的订单-申请售后”选择“维修”，按提示寄回或预约上门检测，保修期内免费维修。",
            "Choose Repair under My Orders > After-sales service and send the item in or book an inspection; repairs within warranty are free."
        )
    ),
    topic!(
        "warranty",
        Some("damaged-on-arrival"),
        ("收到的商品有破损怎么办？", "My item arrived damaged"),
        [
            ("快递到了东西是坏的", "The item was broken on arrival"),
            (
                "外包装破了商品也坏了",
                "The box and the item are both damaged"
            )
        ],
        (
            "请拍摄商品和外包装照片，在签收后48小时内申请售后，我们会优先为您换新或退款。",
            "Take photos of the item and the packaging and file an after-sales request within 48 hours of delivery; we will prioritise a replacement or refund."
        )
    ),
    topic!(
        "warranty",
        Some("warranty-repair"),
        ("保修期是多久？", "How long is the warranty?"),
        [
            (
                "这个商品保修几年",
                "How many years of warranty does this have?"
            ),
            (
                "过保了还能修吗",
                "Can it be repaired after the warranty ends?"
            )
        ],
        (
            "保修期以商品页和保修卡为准，手机一般为一年；过保维修需按实际费用收取。",
            "The warranty period is shown on the product page and warranty card; phones usually have one year. Out-of-warranty repairs are charged at cost."
        )
    ),
    topic!(
        "warranty",
        Some("warranty-repair"),
        ("维修进度在哪里查看？", "Where can I follow my repair?"),
        [
            ("修好了没有", "Is my repair done yet?"),
            (
                "送修的东西什么时候寄回",
                "When will my repaired item be sent back?"
            )
        ],
        (
            "在“客户服务-返修/退换货”中打开对应服务单，即可查看检测和维修进度。",
            "Open the service request under Customer service > Repairs/Returns to follow inspection and repair."
        )
    ),
    topic!(
        "warranty",
        Some("damaged-on-arrival"),
        (
            "收到的商品和描述不符怎么办？",
            "The item is not as described"
        ),
        [
            ("发错货了", "I received the wrong item"),
            (
                "颜色和我买的不一样",
                "The colour is different from what I ordered"
            )
        ],
        (
            "请在售后申请中选择“商品与描述不符”并上传照片，审核通过后可换货或退货，运费由京东或商家承担。",
            "Choose Not as described in the after-sales request and upload photos. Once approved you can exchange or return it, with shipping paid by JD or the merchant."
        )
    ),
    topic!(
        "warranty",
        Some("warranty-repair"),
        (
            "以换代修是什么政策？",
            "What is the replace-instead-of-repair policy?"
        ),
        [
            ("能直接换新吗", "Can I get a new one instead of a repair?"),
            (
                "一年内坏了能换新吗",
                "Can I get a replacement if it breaks within a year?"
            )
        ],
        (
            "部分家电和数码商品在规定期限内出现性能故障，检测确认后可直接换新，以商品页标识为准。",
            "For some appliances and electronics, a confirmed fault within the stated period is replaced with a new unit, as marked on the product page."
        )
    ),
];

/// Added to an entry's answer when the knowledge team revises it.
pub(crate) const REVISION_NOTES: &[Bi] = &[
    (
        "（规则已于近期更新，以页面最新说明为准。）",
        " (This policy was recently updated; the page shows the latest terms.)",
    ),
    (
        "如需人工协助，可在对话中输入“转人工”。",
        " If you need a person, type \"agent\" in the chat.",
    ),
    (
        "PLUS会员可享受优先处理。",
        " PLUS members are handled with priority.",
    ),
];

/// New paraphrases the knowledge team adds after seeing how customers really ask.
pub(crate) const EXTRA_PARAPHRASES: &[Bi] = &[
    ("这个怎么弄啊", "how does this work"),
    ("能帮我看一下吗", "can you check this for me"),
    ("急！在线等", "urgent, waiting online"),
    ("请问具体怎么操作", "what exactly do I need to do"),
];

pub(crate) const KNOWLEDGE_RETIRE_REASONS: &[&str] = &[
    "superseded by the new after-sales policy",
    "campaign ended; answer no longer accurate",
    "merged into a clearer entry after quality review",
];

// ---- scenarios ----

/// A request scenario the triage model predicts: what the customer is really asking about.
pub(crate) struct Scenario {
    pub code: &'static str,
    pub category: &'static str,
    /// How likely the bot alone resolves it, before the customer's mood is considered.
    pub containable: f64,
    pub openers: &'static [Bi],
    pub follow_ups: &'static [Bi],
    pub agent_replies: &'static [Bi],
    pub ticket_subject: Bi,
}

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        code: "where-is-my-parcel",
        category: "shipping",
        containable: 0.78,
        openers: &[
            ("我的订单{order}到哪了？", "Where is my order {order}?"),
            (
                "买的{product}物流怎么一直不动",
                "The tracking for my {product} hasn't moved",
            ),
            (
                "快递显示已签收，可是我没收到{product}",
                "It says delivered but I never got my {product}",
            ),
            (
                "请问订单{order}什么时候能送到",
                "When will order {order} arrive?",
            ),
        ],
        follow_ups: &[
            ("已经{days}天了还没到", "It has been {days} days already"),
            (
                "能帮我联系一下快递员吗",
                "Can you contact the courier for me?",
            ),
            (
                "物流信息最后更新在{days}天前",
                "The last tracking update was {days} days ago",
            ),
        ],
        agent_replies: &[
            (
                "已为您联系配送站，包裹今天会优先派送，配送员稍后会联系您。",
                "I've contacted the delivery station; your parcel will be delivered first thing today and the courier will call you.",
            ),
            (
                "查询到包裹在分拣中心滞留，已提交加急处理，预计明天送达。",
                "The parcel was held at the sorting centre. I've escalated it and it should arrive tomorrow.",
            ),
        ],
        ticket_subject: (
            "包裹未收到，需配送站核实",
            "Parcel not received; delivery station to investigate",
        ),
    },
    Scenario {
        code: "change-address",
        category: "shipping",
        containable: 0.7,
        openers: &[
            (
                "订单{order}地址填错了，能改吗",
                "I put the wrong address on order {order}, can I change it?",
            ),
            (
                "我想把收货地址改到公司",
                "I'd like to have it delivered to my office instead",
            ),
            (
                "下单后怎么修改地址",
                "How do I change the address after ordering?",
            ),
        ],
        follow_ups: &[
            (
                "页面上没有修改地址的按钮",
                "There is no change-address button on the page",
            ),
            (
                "新地址是同一个小区的另一栋楼",
                "The new address is another building in the same compound",
            ),
        ],
        agent_replies: &[
            (
                "已为您提交地址修改申请，仓库出库前会按新地址配送。",
                "I've submitted the address change; the warehouse will ship to the new address.",
            ),
            (
                "订单已出库，我已联系配送站为您转寄到新地址。",
                "The order has left the warehouse, so I've asked the station to redirect it to the new address.",
            ),
        ],
        ticket_subject: (
            "修改收货地址需仓库拦截",
            "Address change needs a warehouse intercept",
        ),
    },
    Scenario {
        code: "delivery-delayed",
        category: "delays",
        containable: 0.62,
        openers: &[
            (
                "说好的{days}天送到，现在还没到",
                "You promised delivery in {days} days and it's still not here",
            ),
            (
                "{product}的快递怎么这么慢",
                "Why is the delivery of my {product} so slow?",
            ),
            (
                "订单{order}延迟了，什么情况",
                "Order {order} is late, what's going on?",
            ),
        ],
        follow_ups: &[
            (
                "我急着用，能不能快点",
                "I need it urgently, can you speed it up?",
            ),
            ("超时了有没有补偿", "Do I get anything for the delay?"),
            (
                "物流一直显示运输中",
                "Tracking just keeps saying in transit",
            ),
        ],
        agent_replies: &[
            (
                "非常抱歉耽误您的时间，已为您催促承运商，并申请了一张运费券作为补偿。",
                "Sorry for the delay. I've chased the carrier and added a shipping coupon to your account as an apology.",
            ),
            (
                "因天气原因干线运输延误，包裹预计{days}天内送达，我会持续跟进。",
                "Line-haul transport was delayed by weather; the parcel should arrive within {days} days and I'll keep following it.",
            ),
        ],
        ticket_subject: (
            "配送超时，跟进承运商并补偿",
            "Late delivery; chase carrier and compensate",
        ),
    },
    Scenario {
        code: "urge-shipment",
        category: "delays",
        containable: 0.75,
        openers: &[
            ("订单{order}什么时候发货", "When will order {order} ship?"),
            (
                "买了{days}天了还没发货",
                "I bought it {days} days ago and it hasn't shipped",
            ),
            ("麻烦催一下发货", "Please hurry up the shipment"),
        ],
        follow_ups: &[
            (
                "页面说24小时发货的",
                "The page said it ships within 24 hours",
            ),
            ("不发货我就取消了", "If it doesn't ship I'll cancel"),
        ],
        agent_replies: &[
            (
                "已为您催促仓库，订单预计今天出库。",
                "I've chased the warehouse; your order should ship today.",
            ),
            (
                "该商品为预售，将在{days}天内发货，已为您登记优先发货。",
                "This is a pre-sale item shipping within {days} days; I've flagged it for priority.",
            ),
        ],
        ticket_subject: (
            "超时未发货，催仓库出库",
            "Not shipped in time; chase warehouse",
        ),
    },
    Scenario {
        code: "return-request",
        category: "returns",
        containable: 0.6,
        openers: &[
            (
                "我想退货，{product}不合适",
                "I want to return the {product}, it doesn't fit",
            ),
            ("订单{order}怎么申请退货", "How do I return order {order}?"),
            (
                "买的{product}有问题，要退",
                "There's a problem with the {product}, I want to return it",
            ),
        ],
        follow_ups: &[
            (
                "包装已经拆了还能退吗",
                "Can I return it if I've opened the box?",
            ),
            ("退货运费谁出", "Who pays the return shipping?"),
            ("申请提交不了", "The request won't submit"),
        ],
        agent_replies: &[
            (
                "已为您提交退货申请，审核通过后取件员会上门取件。",
                "I've filed the return for you; a courier will collect it once it's approved.",
            ),
            (
                "您的商品符合七天无理由退货，已为您办理，运费由我们承担。",
                "Your item qualifies for a 7-day return; I've processed it and we'll cover the shipping.",
            ),
        ],
        ticket_subject: ("退货申请需人工审核", "Return request needs manual review"),
    },
    Scenario {
        code: "return-pickup",
        category: "returns",
        containable: 0.7,
        openers: &[
            (
                "退货预约了取件一直没人来",
                "I booked a return pickup and nobody came",
            ),
            ("能不能上门取件", "Can you collect the return from my home?"),
            (
                "订单{order}退货怎么寄回",
                "How do I send back order {order}?",
            ),
        ],
        follow_ups: &[
            (
                "我明天不在家，能改时间吗",
                "I'm out tomorrow, can I change the time?",
            ),
            ("取件员电话打不通", "The courier's phone doesn't answer"),
        ],
        agent_replies: &[
            (
                "已为您重新预约明天上午的取件，取件员会提前电话联系。",
                "I've rebooked the pickup for tomorrow morning; the courier will call before coming.",
            ),
            (
                "已催促站点安排取件，今天下班前会有人上门。",
                "I've asked the station to send someone; they'll come before the end of today.",
            ),
        ],
        ticket_subject: ("上门取件未履约", "Return pickup missed"),
    },
    Scenario {
        code: "refund-progress",
        category: "refunds",
        containable: 0.7,
        openers: &[
            ("退款什么时候到账", "When will my refund arrive?"),
            (
                "订单{order}退款到哪一步了",
                "Where is the refund for order {order}?",
            ),
            (
                "东西已经退回去了，钱呢",
                "I sent the item back, where's my money?",
            ),
        ],
        follow_ups: &[
            ("已经过了{days}天了", "It's been {days} days"),
            ("退款金额是{amount}元", "The refund is CNY {amount}"),
        ],
        agent_replies: &[
            (
                "仓库已签收您的退货，退款已提交，预计1-3个工作日到账。",
                "The warehouse has received your return and the refund is submitted; expect it in 1 to 3 working days.",
            ),
            (
                "已为您加急退款审核，{amount}元将原路退回。",
                "I've expedited the refund review; CNY {amount} will go back to your original payment method.",
            ),
        ],
        ticket_subject: ("退款进度跟进", "Refund progress follow-up"),
    },
    Scenario {
        code: "refund-not-received",
        category: "refunds",
        containable: 0.45,
        openers: &[
            (
                "显示退款成功，可是我银行卡没收到钱",
                "It says refunded but nothing reached my bank card",
            ),
            (
                "退款{amount}元到现在都没到",
                "The CNY {amount} refund still hasn't arrived",
            ),
            (
                "订单{order}退款成功了钱在哪",
                "Order {order} says refunded, so where is the money?",
            ),
        ],
        follow_ups: &[
            (
                "银行说没有收到这笔款",
                "The bank says they received nothing",
            ),
            ("都{days}天了", "It's been {days} days"),
            ("你们是不是没退", "Did you actually refund it?"),
        ],
        agent_replies: &[
            (
                "已为您查询到退款流水号，请凭此联系银行核实入账。",
                "I've found the refund transaction number; please give it to your bank to trace the payment.",
            ),
            (
                "财务核实退款确已原路退回，我已提交银行查询单，3个工作日内回复您。",
                "Finance confirms the refund was sent; I've opened a trace with the bank and will reply within 3 working days.",
            ),
        ],
        ticket_subject: (
            "退款成功未到账，需财务核查",
            "Refund marked paid but not received; finance to check",
        ),
    },
    Scenario {
        code: "invoice-request",
        category: "invoices",
        containable: 0.8,
        openers: &[
            (
                "订单{order}怎么开发票",
                "How do I get an invoice for order {order}?",
            ),
            (
                "我要开公司抬头的发票",
                "I need an invoice in my company's name",
            ),
            ("电子发票在哪里下载", "Where do I download the e-invoice?"),
        ],
        follow_ups: &[
            ("需要增值税专用发票", "I need a VAT special invoice"),
            ("发票能发到我邮箱吗", "Can you e-mail me the invoice?"),
        ],
        agent_replies: &[
            (
                "已为您申请补开电子发票，开具后会发送到您的邮箱。",
                "I've requested the e-invoice; it will be e-mailed to you once issued.",
            ),
            (
                "专票需要先提交企业资质，我已将操作步骤发送给您。",
                "A VAT special invoice needs your company's details first; I've sent you the steps.",
            ),
        ],
        ticket_subject: ("补开发票", "Issue invoice"),
    },
    Scenario {
        code: "invoice-correction",
        category: "invoices",
        containable: 0.65,
        openers: &[
            ("发票抬头开错了", "The invoice has the wrong company name"),
            (
                "税号填错了能换开吗",
                "I entered the wrong tax number, can you reissue?",
            ),
            (
                "退货之后发票怎么办",
                "What happens to the invoice after the return?",
            ),
        ],
        follow_ups: &[
            ("页面上换开按钮是灰的", "The reissue button is greyed out"),
            ("财务急着要", "Our accounts department needs it urgently"),
        ],
        agent_replies: &[
            (
                "已为您提交发票换开，新发票1个工作日内开具。",
                "I've submitted the reissue; the new invoice will be issued within one working day.",
            ),
            (
                "原发票已冲红，剩余商品的发票已重新开具。",
                "The original invoice has been reversed and a new one issued for the items you kept.",
            ),
        ],
        ticket_subject: ("发票换开", "Invoice reissue"),
    },
    Scenario {
        code: "payment-failed",
        category: "payment",
        containable: 0.75,
        openers: &[
            ("付款一直失败", "The payment keeps failing"),
            ("银行卡付不了款", "My bank card payment doesn't work"),
            ("支付的时候提示系统繁忙", "It says system busy when I pay"),
        ],
        follow_ups: &[
            ("换了张卡也不行", "Another card doesn't work either"),
            ("订单会不会被取消", "Will my order be cancelled?"),
        ],
        agent_replies: &[
            (
                "银行通道刚才有波动，现在已恢复，请您重新支付。",
                "The bank channel had a hiccup and is back now; please try paying again.",
            ),
            (
                "已为您延长订单支付时间24小时，您可以换用白条或微信支付。",
                "I've extended the payment window by 24 hours; you can also pay with Baitiao or WeChat Pay.",
            ),
        ],
        ticket_subject: ("支付失败排查", "Payment failure investigation"),
    },
    Scenario {
        code: "double-charge",
        category: "payment",
        containable: 0.5,
        openers: &[
            ("一个订单扣了我两次钱", "I was charged twice for one order"),
            ("订单{order}重复扣款了", "Order {order} charged me twice"),
            (
                "付了钱订单还显示待支付",
                "I paid but the order still says awaiting payment",
            ),
        ],
        follow_ups: &[
            ("多扣了{amount}元", "I was overcharged CNY {amount}"),
            ("什么时候退回来", "When will it be returned?"),
        ],
        agent_replies: &[
            (
                "已核实重复支付{amount}元，系统将在1-3个工作日内原路退回。",
                "I've confirmed the duplicate payment of CNY {amount}; it will be refunded within 1 to 3 working days.",
            ),
            (
                "支付结果已同步，订单已变为待发货，多扣款项已发起退款。",
                "The payment has synced and the order is now awaiting shipment; the extra charge is being refunded.",
            ),
        ],
        ticket_subject: ("重复扣款退款", "Refund duplicate charge"),
    },
    Scenario {
        code: "coupon-not-applied",
        category: "coupons",
        containable: 0.8,
        openers: &[
            ("优惠券用不了", "My coupon doesn't work"),
            ("满减怎么没减", "Why didn't the discount apply?"),
            (
                "下单没用上券能补吗",
                "I forgot to use my coupon, can you apply it now?",
            ),
        ],
        follow_ups: &[
            ("券明明没过期", "The coupon hasn't expired"),
            ("差了{amount}元", "That's CNY {amount} difference"),
        ],
        agent_replies: &[
            (
                "该券不适用于特价商品，已为您补发一张同等面额的通用券。",
                "That coupon excludes sale items; I've issued you a general coupon of the same value.",
            ),
            (
                "已核实是系统问题，差价{amount}元将以京豆形式返还。",
                "It was a system issue; the CNY {amount} difference will be returned as JD beans.",
            ),
        ],
        ticket_subject: ("优惠券未生效补偿", "Coupon not applied; compensate"),
    },
    Scenario {
        code: "price-protection",
        category: "coupons",
        containable: 0.72,
        openers: &[
            (
                "刚买的{product}就降价了",
                "The {product} I just bought is cheaper now",
            ),
            (
                "订单{order}能申请价保吗",
                "Can I get price protection on order {order}?",
            ),
            ("价保申请失败了", "My price-protection claim failed"),
        ],
        follow_ups: &[
            ("差价是{amount}元", "The difference is CNY {amount}"),
            ("才买了{days}天", "I only bought it {days} days ago"),
        ],
        agent_replies: &[
            (
                "已为您申请价保，差价{amount}元将退回原支付方式。",
                "I've filed price protection; the CNY {amount} difference goes back to your payment method.",
            ),
            (
                "该降价属于秒杀价不参与价保，已为您申请一张补偿券。",
                "That was a flash-sale price, which isn't covered, but I've requested a goodwill coupon for you.",
            ),
        ],
        ticket_subject: ("价保差价退款", "Price-protection refund"),
    },
    Scenario {
        code: "login-problem",
        category: "account",
        containable: 0.7,
        openers: &[
            ("账号登不上去了", "I can't log in to my account"),
            ("收不到验证码", "I don't get the verification code"),
            (
                "提示账号存在风险被冻结",
                "It says my account is frozen for security risk",
            ),
        ],
        follow_ups: &[
            (
                "换了手机号收不到短信",
                "I changed my number and can't get the SMS",
            ),
            ("一直提示密码错误", "It keeps saying wrong password"),
        ],
        agent_replies: &[
            (
                "已为您提交账号安全审核，审核通过后会短信通知您解冻。",
                "I've submitted a security review; you'll get an SMS once the account is unfrozen.",
            ),
            (
                "已为您重置登录保护，请用短信验证码重新登录。",
                "I've reset the login protection; please log in again with an SMS code.",
            ),
        ],
        ticket_subject: ("账号冻结申诉", "Frozen account appeal"),
    },
    Scenario {
        code: "change-phone",
        category: "account",
        containable: 0.72,
        openers: &[
            ("怎么换绑手机号", "How do I change my linked phone number?"),
            (
                "原来的手机号不用了，怎么改",
                "I don't use my old number any more, how do I change it?",
            ),
            ("我想注销账号", "I want to close my account"),
        ],
        follow_ups: &[
            (
                "原手机号收不到验证码",
                "I can't get codes on the old number",
            ),
            ("人脸识别一直失败", "Face verification keeps failing"),
        ],
        agent_replies: &[
            (
                "已为您发起人工换绑审核，请按短信提示上传身份证照片。",
                "I've started a manual number change; please upload your ID photo as the SMS explains.",
            ),
            (
                "注销申请已受理，15天后生效，期间登录即可撤销。",
                "Your closure request is accepted and takes effect in 15 days; logging in before then cancels it.",
            ),
        ],
        ticket_subject: ("人工换绑手机号", "Manual phone number change"),
    },
    Scenario {
        code: "warranty-repair",
        category: "warranty",
        containable: 0.55,
        openers: &[
            (
                "{product}坏了，能保修吗",
                "My {product} is broken, is it under warranty?",
            ),
            (
                "买的{product}用了{days}天就坏了",
                "My {product} broke after {days} days",
            ),
            (
                "送修的东西什么时候寄回来",
                "When will my repaired item come back?",
            ),
        ],
        follow_ups: &[
            ("开不了机了", "It won't turn on"),
            ("能直接换新吗", "Can I just get a new one?"),
            ("维修要多久", "How long does the repair take?"),
        ],
        agent_replies: &[
            (
                "已为您创建维修单，取件员明天上门取件，检测后7个工作日内修复寄回。",
                "I've created a repair order; a courier collects it tomorrow and it comes back within 7 working days of inspection.",
            ),
            (
                "符合以换代修政策，检测确认后直接为您换新。",
                "This qualifies for replacement instead of repair; once the fault is confirmed we'll send a new one.",
            ),
        ],
        ticket_subject: ("商品故障保修", "Warranty repair"),
    },
    Scenario {
        code: "damaged-on-arrival",
        category: "warranty",
        containable: 0.45,
        openers: &[
            ("收到的{product}是坏的", "The {product} arrived broken"),
            (
                "外包装破了，里面的{product}也摔坏了",
                "The box was crushed and the {product} inside is damaged",
            ),
            (
                "发错货了，不是我买的{product}",
                "You sent the wrong item, not the {product} I bought",
            ),
        ],
        follow_ups: &[
            ("照片已经拍了", "I've taken photos"),
            ("我要换新的", "I want a replacement"),
            ("这质量也太差了", "The quality is terrible"),
        ],
        agent_replies: &[
            (
                "非常抱歉，已为您安排换新，新商品今天发出，坏件由取件员上门回收。",
                "I'm very sorry. A replacement ships today and the courier will collect the damaged one.",
            ),
            (
                "已为您办理退款{amount}元，无需寄回破损商品。",
                "I've refunded CNY {amount}; you don't need to send the damaged item back.",
            ),
        ],
        ticket_subject: ("到货破损换新", "Damaged on arrival; replace"),
    },
];

pub(crate) fn scenario_index(code: &str) -> Option<usize> {
    SCENARIOS.iter().position(|s| s.code == code)
}

// ---- what customers say besides their question ----

pub(crate) const ASK_FOR_HUMAN: &[Bi] = &[
    ("转人工", "agent"),
    ("人工客服", "I want to talk to a person"),
    ("我要找人工！", "Human agent please!"),
    (
        "机器人听不懂，给我转人工",
        "The bot doesn't get it, give me a real person",
    ),
    ("人工人工人工", "human human human"),
];

pub(crate) const THANKS: &[Bi] = &[
    ("好的，谢谢", "OK, thanks"),
    ("明白了，谢谢！", "Got it, thank you!"),
    ("好的，解决了", "Great, that solved it"),
    ("行，我试试", "OK, I'll try that"),
    ("没有了，谢谢", "No, that's all, thanks"),
];

/// What customers say in any chat once the question is out.
pub(crate) const GENERIC_FOLLOW_UPS: &[Bi] = &[
    ("那大概要多久？", "Roughly how long will that take?"),
    ("可以，麻烦你了", "Sure, thanks for your help"),
    ("嗯嗯，还有别的办法吗", "Hmm, is there any other way?"),
    (
        "我刚看了一下，还是没有变化",
        "I just checked and nothing has changed",
    ),
    ("那我等你消息", "OK, I'll wait to hear from you"),
    ("好的，那需要我做什么吗", "OK, do I need to do anything?"),
];

pub(crate) const STILL_UNCLEAR: &[Bi] = &[
    ("不是这个意思", "That's not what I meant"),
    ("还是不明白", "I still don't understand"),
    ("你说的我都试过了", "I've already tried all that"),
    ("答非所问", "That doesn't answer my question"),
];

pub(crate) const WAITING_PINGS: &[Bi] = &[
    ("人呢？", "Hello? Anyone there?"),
    ("还要等多久", "How much longer do I have to wait?"),
    ("排队排了好久了", "I've been in the queue for ages"),
    ("有人吗？？", "Is anybody there??"),
];

/// Suffixes and prefixes that make a message angry, as angry customers write.
pub(crate) const ANGRY_PREFIXES: &[Bi] = &[
    ("到底怎么回事！", "What is going on!"),
    ("太过分了！", "This is ridiculous!"),
    ("我要投诉！", "I want to complain!"),
    ("", ""),
];
pub(crate) const ANGRY_SUFFIXES: &[&str] = &["！！！", "？？？", "!!!", "???", "！！", "？！"];

pub(crate) const CONTACT_DETAILS: &[Bi] = &[
    (
        "我的电话是{phone}，方便的话打给我",
        "My number is {phone}, feel free to call",
    ),
    ("联系电话{phone}", "Phone: {phone}"),
    (
        "有结果发我邮箱{email}",
        "Please e-mail me at {email} when you know more",
    ),
];

pub(crate) const REOPEN_LINES: &[Bi] = &[
    (
        "刚才的问题还是没解决",
        "The problem from earlier still isn't solved",
    ),
    ("我又来了，还是那个订单", "Me again, same order as before"),
    (
        "按你们说的做了，还是不行",
        "I did what you said and it still doesn't work",
    ),
];

// ---- the bot ----

pub(crate) const BOT_NO_ANSWER: &[Bi] = &[
    (
        "抱歉，我还没有理解您的问题，可以换个说法试试吗？",
        "Sorry, I didn't quite get that. Could you put it another way?",
    ),
    (
        "这个问题我暂时无法回答，您可以描述得更具体一些，或输入“转人工”。",
        "I can't answer that yet. Could you give more detail, or type \"agent\"?",
    ),
];

pub(crate) const BOT_PREFIXES: &[Bi] = &[("亲，", ""), ("您好，", "Sure! "), ("", "")];

pub(crate) const BOT_CLOSED_QUEUE: Bi = (
    "商家客服的服务时间为每天08:00-23:00，现在暂时无法接入人工。您可以留言，商家上班后会尽快回复您。",
    "The merchant's service team works 08:00-23:00 every day and cannot take chats now. Leave a message and they will reply when they are back.",
);

pub(crate) const BOT_GOODBYE: &[Bi] = &[
    (
        "很高兴为您服务，祝您购物愉快！",
        "Happy to help, enjoy your shopping!",
    ),
    (
        "问题已解决，感谢您的耐心，再见！",
        "Glad that's sorted, thanks for your patience. Bye!",
    ),
];

// ---- agents ----

pub(crate) const AGENT_GREETINGS: &[Bi] = &[
    (
        "您好，我是客服{agent}，很高兴为您服务，请问有什么可以帮您？",
        "Hello, this is {agent} from customer service. How can I help you today?",
    ),
    (
        "您好，{agent}为您服务，已看到您的问题，请稍等，我这边为您查询。",
        "Hi, {agent} here. I can see your question; give me a moment to look it up.",
    ),
    (
        "亲，让您久等了，我是{agent}，请问是订单{order}的问题吗？",
        "Sorry for the wait, I'm {agent}. Is this about order {order}?",
    ),
];

pub(crate) const AGENT_CHECKING: &[Bi] = &[
    (
        "正在为您查询，请稍等一下。",
        "I'm checking that for you, one moment please.",
    ),
    (
        "我已经看到订单{order}的信息，马上帮您处理。",
        "I can see order {order}; I'll sort it out now.",
    ),
    (
        "麻烦您提供一下商品照片，方便我们核实。",
        "Could you send a photo of the item so we can verify it?",
    ),
    (
        "我需要和仓库确认一下，大约需要几分钟。",
        "I need to confirm with the warehouse; it'll take a few minutes.",
    ),
];

pub(crate) const AGENT_SOOTHING: &[Bi] = &[
    (
        "非常理解您的心情，给您带来不便真的很抱歉。",
        "I completely understand, and I'm really sorry for the trouble.",
    ),
    (
        "您先别着急，这个问题我一定帮您跟进到底。",
        "Please don't worry, I'll see this through for you.",
    ),
];

pub(crate) const AGENT_PROGRESS: &[Bi] = &[
    (
        "已经帮您备注加急了，请您放心。",
        "I've flagged it as urgent, don't worry.",
    ),
    (
        "稍后会有短信通知您处理结果。",
        "You'll get an SMS with the outcome shortly.",
    ),
    ("您看这样处理可以吗？", "Would that work for you?"),
    (
        "我这边已经记录下来，会持续跟进。",
        "I've noted it and will keep following up.",
    ),
    (
        "不需要您额外操作，等待通知即可。",
        "You don't need to do anything else; just wait for the notification.",
    ),
];

pub(crate) const AGENT_WRAP_UP: &[Bi] = &[
    (
        "请问还有其他可以帮您的吗？",
        "Is there anything else I can help you with?",
    ),
    (
        "问题已经为您处理好了，还有其他疑问吗？",
        "That's all taken care of. Any other questions?",
    ),
];

pub(crate) const AGENT_TICKET_NOTICE: &[Bi] = &[
    (
        "这个问题需要专人跟进，我已为您创建工单，处理结果会短信通知您。",
        "This needs a specialist, so I've opened a ticket; you'll get an SMS with the outcome.",
    ),
    (
        "已为您提交工单，相关部门会在24小时内联系您。",
        "I've filed a ticket and the team will contact you within 24 hours.",
    ),
];

pub(crate) const INTERNAL_NOTES: &[&str] = &[
    "客户情绪激动，已安抚，建议后续回访。",
    "已核实物流轨迹，配送站反馈今日派送。",
    "客户为PLUS会员，已申请补偿券。",
    "疑似重复咨询，客户三天内第二次来问同一订单。",
    "Customer prefers English; replied in English.",
    "需要仓库协查，已在群里同步。",
    "QA: reply template used correctly, first response within SLA.",
    "客户提供了破损照片，已上传到售后单。",
];

pub(crate) const TRANSFER_TO_QUEUE_REASONS: &[&str] = &[
    "转售后专员处理",
    "问题属于其他业务组，转对应队列",
    "需要发票组处理",
    "wrong queue: customer's issue is after-sales",
];

pub(crate) const TRANSFER_TO_AGENT_REASONS: &[&str] = &[
    "转资深客服处理投诉",
    "客户要求英文服务",
    "交接班，转同组同事继续跟进",
    "escalated to senior agent",
];

pub(crate) const AGENT_GIVEN_NAMES: &[&str] = &[
    "静", "伟", "芳", "娜", "敏", "磊", "洋", "艳", "勇", "杰", "娟", "涛", "明", "超", "秀英",
    "丹", "婷", "晨", "欣怡", "子涵", "浩然", "雨桐", "佳琪", "思远",
];
pub(crate) const AGENT_SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
pub(crate) const AGENT_ENGLISH_NAMES: &[&str] = &[
    "Emily", "Jason", "Grace", "Kevin", "Linda", "Tony", "Cindy", "Eric", "Vivian", "Leo",
];

// ---- tickets ----

pub(crate) const TICKET_DESCRIPTIONS: &[Bi] = &[
    (
        "客户反馈：{question}。订单{order}，需专人核实并回复客户。",
        "Customer reports: {question}. Order {order}; a specialist must verify and reply.",
    ),
    (
        "在线会话未能解决，客户诉求：{question}（订单{order}）。",
        "Not resolved in chat. Customer's request: {question} (order {order}).",
    ),
];

pub(crate) const TICKET_PRIVATE_COMMENTS: &[&str] = &[
    "已联系仓库核实，等待回复。",
    "承运商反馈包裹在途，明日派送。",
    "财务确认退款已原路退回，附流水号。",
    "Checked with the merchant; they will ship a replacement.",
    "客户此前有两次同类投诉，按加急处理。",
];

pub(crate) const TICKET_PUBLIC_COMMENTS: &[Bi] = &[
    (
        "您好，您的问题我们正在处理中，预计24小时内给您答复。",
        "Hello, we're working on your request and will reply within 24 hours.",
    ),
    (
        "您好，我们需要您补充商品照片和订单截图，请直接回复本工单。",
        "Hello, please reply to this ticket with photos of the item and a screenshot of the order.",
    ),
    (
        "您好，问题已处理完毕，如仍有疑问请回复本工单。",
        "Hello, your request has been resolved. Reply to this ticket if anything is still unclear.",
    ),
];

pub(crate) const TICKET_CUSTOMER_REPLIES: &[Bi] = &[
    (
        "照片已经上传了，请尽快处理",
        "I've uploaded the photos, please hurry",
    ),
    (
        "还是没有收到，麻烦再查一下",
        "Still nothing, please check again",
    ),
    ("好的，收到了，谢谢", "Got it, thank you"),
    (
        "都几天了还没解决？",
        "It's been days, why isn't this fixed?",
    ),
];

pub(crate) const ESCALATION_REASONS: &[&str] = &[
    "客户多次来电催促，升级主管处理",
    "涉及金额较大，需要主管审批",
    "customer threatened a regulator complaint",
    "超过处理时效仍未解决",
];

pub(crate) const TICKET_REOPEN_REASONS: &[&str] = &[
    "客户反馈问题未真正解决",
    "refund still not received after resolution",
];

pub(crate) const TICKET_SUBJECT_SUFFIXES: &[Bi] = &[
    ("（加急）", " (urgent)"),
    ("（已补充材料）", " (details added)"),
];

pub(crate) const FOLLOW_UP_TICKET: Bi = (
    "关闭工单后客户再次反馈，新建跟进工单：{question}",
    "Customer came back after the ticket closed; follow-up: {question}",
);

// ---- surveys ----

pub(crate) const SURVEY_PRAISE: &[Bi] = &[
    ("客服很耐心，点赞", "Very patient agent, thanks"),
    ("解决得很快", "Solved quickly"),
    ("机器人回答挺准的", "The bot's answer was spot on"),
    ("服务态度好", "Friendly service"),
];
pub(crate) const SURVEY_COMPLAINTS: &[Bi] = &[
    ("排队太久了", "Waited far too long"),
    ("问题没有解决", "My problem wasn't solved"),
    ("机器人答非所问", "The bot didn't understand me"),
    ("转了好几次人工", "I was passed around several times"),
];

// ---- the catalogue ----

/// Product categories the shop sells, with the order value range in fen.
pub(crate) struct ProductCategory {
    pub code: &'static str,
    pub products: &'static [Bi],
    pub min_fen: i64,
    pub max_fen: i64,
    /// Durable goods get repaired under warranty; food and cosmetics do not.
    pub durable: bool,
    /// Relative share of orders.
    pub weight: f64,
}

pub(crate) const PRODUCT_CATEGORIES: &[ProductCategory] = &[
    ProductCategory {
        code: "mobile-phones",
        durable: true,
        products: &[
            ("手机", "phone"),
            ("手机壳", "phone case"),
            ("充电器", "charger"),
        ],
        min_fen: 3_900,
        max_fen: 899_900,
        weight: 1.4,
    },
    ProductCategory {
        code: "computers",
        durable: true,
        products: &[
            ("笔记本电脑", "laptop"),
            ("显示器", "monitor"),
            ("键盘", "keyboard"),
        ],
        min_fen: 9_900,
        max_fen: 1_299_900,
        weight: 0.8,
    },
    ProductCategory {
        code: "home-appliances",
        durable: true,
        products: &[
            ("空气炸锅", "air fryer"),
            ("洗衣机", "washing machine"),
            ("电饭煲", "rice cooker"),
        ],
        min_fen: 19_900,
        max_fen: 699_900,
        weight: 1.0,
    },
    ProductCategory {
        code: "groceries",
        durable: false,
        products: &[
            ("牛奶", "milk"),
            ("大米", "rice"),
            ("坚果礼盒", "nut gift box"),
        ],
        min_fen: 1_990,
        max_fen: 29_900,
        weight: 1.6,
    },
    ProductCategory {
        code: "apparel",
        durable: false,
        products: &[
            ("羽绒服", "down jacket"),
            ("运动鞋", "trainers"),
            ("T恤", "T-shirt"),
        ],
        min_fen: 4_900,
        max_fen: 159_900,
        weight: 1.1,
    },
    ProductCategory {
        code: "beauty",
        durable: false,
        products: &[
            ("面霜", "face cream"),
            ("口红", "lipstick"),
            ("洗发水", "shampoo"),
        ],
        min_fen: 2_900,
        max_fen: 89_900,
        weight: 0.9,
    },
    ProductCategory {
        code: "baby-care",
        durable: true,
        products: &[
            ("纸尿裤", "nappies"),
            ("奶粉", "formula milk"),
            ("婴儿推车", "pushchair"),
        ],
        min_fen: 5_900,
        max_fen: 299_900,
        weight: 0.7,
    },
    ProductCategory {
        code: "books",
        durable: false,
        products: &[("图书", "book"), ("绘本", "picture book")],
        min_fen: 1_500,
        max_fen: 19_900,
        weight: 0.5,
    },
];

/// Third-party (POP) merchants with their own service teams and queues.
pub(crate) struct Merchant {
    pub id: &'static str,
    pub name: &'static str,
    /// Indices into [`PRODUCT_CATEGORIES`].
    pub sells: &'static [usize],
    /// Staffed around the clock, unlike the rest.
    pub always_open: bool,
    /// Share of merchant orders.
    pub weight: f64,
}

pub(crate) const MERCHANTS: &[Merchant] = &[
    Merchant {
        id: "pop-10231",
        name: "星河数码旗舰店",
        sells: &[0, 1],
        always_open: true,
        weight: 1.5,
    },
    Merchant {
        id: "pop-20417",
        name: "悦家电器专营店",
        sells: &[2],
        always_open: false,
        weight: 1.0,
    },
    Merchant {
        id: "pop-31876",
        name: "花漾美妆官方旗舰店",
        sells: &[5, 4],
        always_open: false,
        weight: 1.0,
    },
    Merchant {
        id: "pop-45502",
        name: "贝贝母婴专营店",
        sells: &[6, 3],
        always_open: false,
        weight: 0.8,
    },
    Merchant {
        id: "pop-58813",
        name: "书香图书专营店",
        sells: &[7],
        always_open: false,
        weight: 0.5,
    },
    Merchant {
        id: "pop-60920",
        name: "潮流服饰旗舰店",
        sells: &[4],
        always_open: false,
        weight: 0.9,
    },
];

pub(crate) const EMAIL_DOMAINS: &[&str] =
    &["qq.com", "163.com", "126.com", "gmail.com", "outlook.com"];
